import { closeSync, fsyncSync, openSync } from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CaracalError, type Clock, Gauge, type Logger, type Registry } from '@caracal/core';

/*
 * Replay spool: an append-only local log of events that could not be published.
 *
 * Layout of `dir`:
 *   seg-<12 digits>.log   segments, appended in order; a new one on every open and after rotation
 *   cursor                {"segment":n,"offset":o}: everything before it was published (fsynced, atomic rename)
 *   seg-<n>.corrupt       a segment whose tail failed its checks, kept for forensics after its intact prefix drained
 *   LOCK                  pid of the process that owns the spool
 * Record frame (big-endian): u32 payload length | u32 CRC-32 of (at + payload) | f64 appended-at ms | JSON payload.
 * Delivery is at-least-once: a crash between publish and cursor write republishes a few events,
 * which consumers drop by event id.
 */

const HEADER = 16;
const SEGMENT = /^seg-(\d{12})\.log$/;
const QUARANTINED = /^seg-\d{12}\.corrupt$/;
const CURSOR_EVERY = 64;

export interface SpoolMetricsOptions {
  registry: Registry;
  /** Metric name prefix; default `caracal`. */
  prefix?: string;
}

export interface ReplaySpoolOptions {
  dir: string;
  /** Appends arriving within this window share one write + fsync; default 5. */
  fsyncIntervalMs?: number;
  clock: Clock;
  logger: Logger;
  /** Start a new segment past this size; default 4 MiB. */
  segmentBytes?: number;
  /** Largest accepted record payload; default 1 MiB. */
  maxRecordBytes?: number;
  metrics?: SpoolMetricsOptions;
}

export interface SpoolCorruption {
  file: string;
  offset: number;
  bytes: number;
}

export interface SpoolStatus {
  /** Records appended and not yet published. */
  entries: number;
  bytes: number;
  /** Appended-at (ms) of the oldest unpublished record; null when empty. */
  oldestAt: number | null;
  /** Corrupt regions found (unreadable tails), this run's and quarantined ones still on disk. */
  corrupt: number;
  corruptBytes: number;
  corruptions: SpoolCorruption[];
}

export interface DrainResult {
  published: number;
  remaining: number;
}

export interface SpoolDrainer {
  /** Drain now instead of at the next interval. */
  kick(): void;
  stop(): Promise<void>;
}

export interface ReplaySpool<T> {
  /** Resolves once the record is on disk (fsynced); rejects with spool_unwritable otherwise. */
  append(event: T): Promise<void>;
  /** Publish unpublished records in append order; stops at the first publish error (kept for later). */
  drain(publish: (event: T) => Promise<void>, opts?: { max?: number }): Promise<DrainResult>;
  /** Drain in the background every intervalMs while records remain, backing off while publish fails. */
  startDrainer(opts: {
    publish: (event: T) => Promise<void>;
    intervalMs?: number;
    backoffMaxMs?: number;
  }): SpoolDrainer;
  /** Age of the oldest unpublished record (0 when empty): `<prefix>_audit_replay_oldest_age_seconds`. */
  oldestAgeSeconds(): number;
  status(): SpoolStatus;
  close(): Promise<void>;
}

interface Segment {
  n: number;
  path: string;
  /** Bytes known good (scanned, or written and fsynced). */
  validEnd: number;
  /** Start of the first unpublished record. */
  readOffset: number;
  /** Offset where a corrupt tail starts. */
  corruptAt?: number;
}

interface PendingAppend {
  frame: Buffer;
  at: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function segName(n: number): string {
  return `seg-${String(n).padStart(12, '0')}.log`;
}

/** Frame one record. */
export function encodeRecord(at: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEADER + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeDoubleBE(at, 8);
  payload.copy(frame, HEADER);
  frame.writeUInt32BE(crc32(frame.subarray(8)), 4);
  return frame;
}

type Decoded = { ok: true; at: number; payload: Buffer; size: number } | { ok: false };

/** Decode the frame at `off`; not ok when torn or failing its CRC. */
export function decodeRecord(buf: Buffer, off: number, maxRecordBytes: number): Decoded {
  if (buf.length - off < HEADER) return { ok: false };
  const len = buf.readUInt32BE(off);
  if (len > maxRecordBytes || off + HEADER + len > buf.length) return { ok: false };
  if (crc32(buf.subarray(off + 8, off + HEADER + len)) !== buf.readUInt32BE(off + 4)) return { ok: false };
  return {
    ok: true,
    at: buf.readDoubleBE(off + 8),
    payload: buf.subarray(off + HEADER, off + HEADER + len),
    size: HEADER + len,
  };
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unwritable(err: unknown): CaracalError {
  const msg = err instanceof Error ? err.message : String(err);
  return new CaracalError('spool_unwritable', 503, `Replay spool not writable: ${msg}`, {}, err);
}

async function takeLock(dir: string): Promise<void> {
  const path = join(dir, 'LOCK');
  try {
    const owner = Number((await readFile(path, 'utf8')).trim());
    if (owner && owner !== process.pid) {
      let alive = true;
      try {
        process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (alive)
        throw new CaracalError('spool_locked', 503, `Replay spool ${dir} is in use by pid ${owner}.`);
    }
  } catch (err) {
    if (err instanceof CaracalError) throw err;
  }
  await writeFile(path, `${process.pid}\n`);
}

/** Open (creating if needed) the spool in `dir`, scanning what a previous run left. */
export async function createReplaySpool<T>(opts: ReplaySpoolOptions): Promise<ReplaySpool<T>> {
  const { dir, clock, logger } = opts;
  const fsyncIntervalMs = opts.fsyncIntervalMs ?? 5;
  const segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
  const maxRecordBytes = opts.maxRecordBytes ?? 1024 * 1024;
  const log = logger.child({ component: 'replay-spool', dir });

  await mkdir(dir, { recursive: true });
  await takeLock(dir);

  const cursor = await readCursor();
  const segments: Segment[] = [];
  const corruptions: SpoolCorruption[] = [];
  // Unpublished records, oldest first: appended-at and frame size (a deque with a moving head).
  const ats: number[] = [];
  const sizes: number[] = [];
  let head = 0;
  let bytes = 0;

  const names = (await readdir(dir)).sort();
  for (const name of names) {
    if (QUARANTINED.test(name)) {
      const size = (await stat(join(dir, name))).size;
      corruptions.push({ file: name, offset: 0, bytes: size });
      continue;
    }
    const m = SEGMENT.exec(name);
    if (!m) continue;
    const n = Number(m[1]);
    const path = join(dir, name);
    if (n < cursor.segment) {
      await unlink(path); // published before a crash interrupted its removal
      continue;
    }
    const buf = await readFile(path);
    let off = n === cursor.segment ? Math.min(cursor.offset, buf.length) : 0;
    const seg: Segment = { n, path, validEnd: 0, readOffset: off };
    while (off < buf.length) {
      const rec = decodeRecord(buf, off, maxRecordBytes);
      if (!rec.ok) {
        seg.corruptAt = off;
        const c = { file: name, offset: off, bytes: buf.length - off };
        corruptions.push(c);
        log.error(
          c,
          'replay spool: corrupt or torn record; the intact prefix drains, the rest is quarantined',
        );
        break;
      }
      ats.push(rec.at);
      sizes.push(rec.size);
      bytes += rec.size;
      off += rec.size;
    }
    seg.validEnd = off;
    segments.push(seg);
  }

  let nextSegment = Math.max(cursor.segment, ...segments.map((s) => s.n), 0) + 1;
  let active: { seg: Segment; fh: FileHandle } | undefined;
  let pending: PendingAppend[] = [];
  let flushing = false;
  let timer: NodeJS.Timeout | undefined;
  let draining = false;
  let closed = false;
  let cursorWrites = 0;

  if (segments.length > 0) {
    log.info(
      { entries: ats.length - head, bytes, corrupt: corruptions.length },
      'replay spool: opened with records',
    );
  }

  async function readCursor(): Promise<{ segment: number; offset: number }> {
    let text: string;
    try {
      text = await readFile(join(dir, 'cursor'), 'utf8');
    } catch {
      return { segment: 0, offset: 0 };
    }
    try {
      const c = JSON.parse(text) as { segment: unknown; offset: unknown };
      if (Number.isSafeInteger(c.segment) && Number.isSafeInteger(c.offset)) {
        return { segment: c.segment as number, offset: c.offset as number };
      }
    } catch {}
    // Republishing from the start is safe (consumers dedupe); skipping would not be.
    log.error(
      { text: text.slice(0, 200) },
      'replay spool: unreadable cursor; draining from the first segment',
    );
    return { segment: 0, offset: 0 };
  }

  async function writeCursor(segment: number, offset: number): Promise<void> {
    const tmp = join(dir, `cursor.${cursorWrites++}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ segment, offset }));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(dir, 'cursor'));
    fsyncDir(dir);
  }

  async function openActive(): Promise<{ seg: Segment; fh: FileHandle }> {
    if (active && active.seg.validEnd < segmentBytes) return active;
    if (active) await retireActive();
    const n = nextSegment++;
    const path = join(dir, segName(n));
    const fh = await open(path, 'wx');
    fsyncDir(dir);
    const seg: Segment = { n, path, validEnd: 0, readOffset: 0 };
    segments.push(seg);
    active = { seg, fh };
    return active;
  }

  async function retireActive(): Promise<void> {
    const a = active;
    active = undefined;
    await a?.fh.close().catch(() => {});
  }

  async function flush(): Promise<void> {
    timer = undefined;
    if (flushing) return;
    flushing = true;
    try {
      while (pending.length > 0) {
        const batch = pending;
        pending = [];
        try {
          const a = await openActive();
          const buf = batch.length === 1 ? batch[0]!.frame : Buffer.concat(batch.map((p) => p.frame));
          let written = 0;
          while (written < buf.length) {
            const { bytesWritten } = await a.fh.write(
              buf,
              written,
              buf.length - written,
              a.seg.validEnd + written,
            );
            written += bytesWritten;
          }
          await a.fh.datasync();
          a.seg.validEnd += buf.length;
          for (const p of batch) {
            ats.push(p.at);
            sizes.push(p.frame.length);
            bytes += p.frame.length;
            p.resolve();
          }
        } catch (err) {
          // The segment may now end in a torn frame: never append after it again.
          if (active) await retireActive();
          log.error({ err: err instanceof Error ? err.message : String(err) }, 'replay spool: write failed');
          const e = unwritable(err);
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      flushing = false;
    }
  }

  function append(event: T): Promise<void> {
    if (closed) return Promise.reject(unwritable(new Error('spool closed')));
    let payload: Buffer;
    try {
      payload = Buffer.from(JSON.stringify(event), 'utf8');
    } catch (err) {
      return Promise.reject(unwritable(err));
    }
    if (payload.length > maxRecordBytes) {
      return Promise.reject(
        new CaracalError('spool_record_too_large', 413, `Spool record over ${maxRecordBytes} bytes.`),
      );
    }
    const at = clock.now();
    return new Promise<void>((resolve, reject) => {
      pending.push({ frame: encodeRecord(at, payload), at, resolve, reject });
      if (!flushing && !timer) timer = setTimeout(() => void flush(), fsyncIntervalMs);
    });
  }

  async function finishSegment(seg: Segment): Promise<void> {
    const next = segments[1];
    const nextCursor = next ? next.n : seg.n + 1;
    if (seg.corruptAt !== undefined) {
      // Keep the unreadable bytes for inspection; rename before the cursor moves past them.
      const quarantined = segName(seg.n).replace(/\.log$/, '.corrupt');
      await rename(seg.path, join(dir, quarantined));
      fsyncDir(dir);
      for (const c of corruptions) if (c.file === segName(seg.n)) c.file = quarantined;
      await writeCursor(nextCursor, 0);
    } else {
      await writeCursor(nextCursor, 0);
      await unlink(seg.path);
    }
    segments.shift();
  }

  async function drain(
    publish: (event: T) => Promise<void>,
    dopts: { max?: number } = {},
  ): Promise<DrainResult> {
    const max = dopts.max ?? Number.POSITIVE_INFINITY;
    let published = 0;
    if (draining) return { published, remaining: ats.length - head };
    draining = true;
    try {
      while (segments.length > 0 && published < max) {
        const seg = segments[0]!;
        const isActive = active?.seg === seg;
        if (seg.readOffset >= seg.validEnd) {
          if (isActive) {
            if (flushing || pending.length > 0 || seg.validEnd === 0) break;
            await retireActive(); // rotate so the drained segment can go
          }
          await finishSegment(seg);
          continue;
        }
        const end = seg.validEnd;
        const fh = await open(seg.path, 'r');
        let buf: Buffer;
        try {
          buf = Buffer.allocUnsafe(end - seg.readOffset);
          let got = 0;
          while (got < buf.length) {
            const { bytesRead } = await fh.read(buf, got, buf.length - got, seg.readOffset + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          buf = buf.subarray(0, got);
        } finally {
          await fh.close();
        }
        let off = 0;
        let sinceCursor = 0;
        try {
          while (off < buf.length && published < max) {
            const rec = decodeRecord(buf, off, maxRecordBytes);
            if (!rec.ok) {
              // Went bad after it was checked (disk trouble): quarantine from here, like a torn tail.
              const at = seg.readOffset;
              seg.corruptAt = at;
              seg.validEnd = at;
              const c = { file: segName(seg.n), offset: at, bytes: end - at };
              corruptions.push(c);
              log.error(c, 'replay spool: record failed its CRC while draining');
              dropQueued(seg, at, end);
              if (isActive) await retireActive();
              break;
            }
            await publish(JSON.parse(rec.payload.toString('utf8')) as T);
            off += rec.size;
            seg.readOffset += rec.size;
            bytes -= sizes[head]!;
            head++;
            published++;
            if (++sinceCursor >= CURSOR_EVERY) {
              await writeCursor(seg.n, seg.readOffset);
              sinceCursor = 0;
            }
          }
        } finally {
          if (sinceCursor > 0) await writeCursor(seg.n, seg.readOffset);
          compact();
        }
      }
    } finally {
      draining = false;
    }
    return { published, remaining: ats.length - head };
  }

  /** Forget queued records of a segment region that turned out unreadable. */
  function dropQueued(seg: Segment, from: number, to: number): void {
    let off = from;
    let i = head;
    // Records of later segments follow this segment's in the deque; this segment's are next in line.
    while (off < to && i < ats.length && seg === segments[0]) {
      off += sizes[i]!;
      bytes -= sizes[i]!;
      i++;
    }
    ats.splice(head, i - head);
    sizes.splice(head, i - head);
  }

  function compact(): void {
    if (head > 4096 && head * 2 > ats.length) {
      ats.splice(0, head);
      sizes.splice(0, head);
      head = 0;
    }
  }

  function status(): SpoolStatus {
    const entries = ats.length - head;
    return {
      entries,
      bytes,
      oldestAt: entries > 0 ? ats[head]! : null,
      corrupt: corruptions.length,
      corruptBytes: corruptions.reduce((s, c) => s + c.bytes, 0),
      corruptions: corruptions.map((c) => ({ ...c })),
    };
  }

  function oldestAgeSeconds(): number {
    const entries = ats.length - head;
    return entries > 0 ? Math.max(0, (clock.now() - ats[head]!) / 1000) : 0;
  }

  function startDrainer(d: {
    publish: (event: T) => Promise<void>;
    intervalMs?: number;
    backoffMaxMs?: number;
  }): SpoolDrainer {
    const intervalMs = d.intervalMs ?? 1000;
    const backoffMaxMs = d.backoffMaxMs ?? 30_000;
    let stopped = false;
    let failures = 0;
    let wakeUp: (() => void) | undefined;
    const loop = (async () => {
      while (!stopped) {
        let delay = intervalMs;
        if (ats.length - head > 0 || segments.length > 0) {
          try {
            const r = await drain(d.publish);
            if (r.published > 0) log.info(r, 'replay spool: drained');
            failures = 0;
          } catch (err) {
            failures++;
            delay = Math.min(backoffMaxMs, intervalMs * 2 ** Math.min(failures, 10));
            if (failures === 1 || failures % 20 === 0) {
              log.warn(
                { failures, err: err instanceof Error ? err.message : String(err) },
                'replay spool: publish failed',
              );
            }
          }
        }
        if (stopped) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, delay);
          function done() {
            clearTimeout(t);
            wakeUp = undefined;
            resolve();
          }
          wakeUp = done;
        });
      }
    })();
    return {
      kick: () => wakeUp?.(),
      async stop() {
        stopped = true;
        wakeUp?.();
        await loop;
      },
    };
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    await flush();
    await retireActive();
    await unlink(join(dir, 'LOCK')).catch(() => {});
  }

  if (opts.metrics) registerSpoolMetrics(opts.metrics, { status, oldestAgeSeconds });

  return { append, drain, startDrainer, oldestAgeSeconds, status, close };
}

/** Gauges read at scrape time; the oldest-age one backs the replay-spool alert. */
function registerSpoolMetrics(
  m: SpoolMetricsOptions,
  spool: Pick<ReplaySpool<unknown>, 'status' | 'oldestAgeSeconds'>,
): void {
  const p = m.prefix ?? 'caracal';
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name: `${p}_${name}`,
      help,
      registers: [m.registry],
      collect() {
        this.set(read());
      },
    });
  gauge('audit_replay_oldest_age_seconds', 'Age of the oldest event waiting in the replay spool', () =>
    spool.oldestAgeSeconds(),
  );
  gauge('audit_replay_entries', 'Events waiting in the replay spool', () => spool.status().entries);
  gauge('audit_replay_bytes', 'Bytes waiting in the replay spool', () => spool.status().bytes);
  gauge(
    'audit_replay_corrupt_regions',
    'Corrupt spool regions detected and kept for inspection',
    () => spool.status().corrupt,
  );
}
