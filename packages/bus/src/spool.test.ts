import { spawn } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, ManualClock, Registry, systemClock } from '@caracal/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createReplaySpool, type ReplaySpool } from './spool.js';
import { silentLogger } from './testing.js';

const CHILD = fileURLToPath(new URL('./fixtures/spool-child.ts', import.meta.url));
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'caracal-spool-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Ev = { seq: number; pad?: string };

async function drainAll(spool: ReplaySpool<Ev>): Promise<number[]> {
  const out: number[] = [];
  await spool.drain(async (e) => {
    out.push(e.seq);
  });
  return out;
}

function segments(dir: string, ext = '.log'): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('seg-') && f.endsWith(ext))
    .sort();
}

/** Run the child until it has acknowledged `minAcks` appends (plus a little), then SIGKILL it. */
function runAndKill(dir: string, firstSeq: number, minAcks: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(firstSeq)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const acked: number[] = [];
    let buffered = '';
    let killing = false;
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (/^\d+$/.test(line)) acked.push(Number(line));
      if (!killing && acked.length >= minAcks) {
        killing = true;
        setTimeout(() => child.kill('SIGKILL'), 20 + Math.random() * 30);
      }
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${signal ?? _code})`));
      else resolve(acked);
    });
  });
}

describe('replay spool', () => {
  it('appends durably, drains in order, and does not republish after a restart', async () => {
    const dir = tempDir();
    const spool = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
    await Promise.all(Array.from({ length: 50 }, (_, i) => spool.append({ seq: i + 1 })));
    expect(spool.status()).toMatchObject({ entries: 50, corrupt: 0 });
    const first: number[] = [];
    const r = await spool.drain(async (e) => void first.push(e.seq), { max: 20 });
    expect(r).toEqual({ published: 20, remaining: 30 });
    await spool.close();

    const again = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
    expect(again.status().entries).toBe(30);
    const rest = await drainAll(again);
    expect([...first, ...rest]).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(again.status()).toMatchObject({ entries: 0, bytes: 0, oldestAt: null });
    await again.close();
    const third = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
    expect(await drainAll(third)).toEqual([]);
    await third.close();
  });

  it('keeps what a failing publish did not take, for the next drain', async () => {
    const dir = tempDir();
    const spool = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
    for (let i = 1; i <= 5; i++) await spool.append({ seq: i });
    const seen: number[] = [];
    await expect(
      spool.drain(async (e) => {
        if (e.seq === 3) throw new Error('bus down');
        seen.push(e.seq);
      }),
    ).rejects.toThrow('bus down');
    expect(spool.status().entries).toBe(3);
    await spool.drain(async (e) => void seen.push(e.seq));
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    // Appends after a full drain go to a new segment; the drained one is gone.
    await spool.append({ seq: 6 });
    expect(await drainAll(spool)).toEqual([6]);
    await spool.close();
  });

  it('reports the age of the oldest unpublished record, also as a metric', async () => {
    const dir = tempDir();
    const clock = new ManualClock();
    const registry = new Registry();
    const spool = await createReplaySpool<Ev>({ dir, clock, logger: silentLogger(), metrics: { registry } });
    expect(spool.oldestAgeSeconds()).toBe(0);
    await spool.append({ seq: 1 });
    clock.advance(5000);
    await spool.append({ seq: 2 });
    clock.advance(2000);
    expect(spool.oldestAgeSeconds()).toBe(7);
    expect(await registry.getSingleMetricAsString('caracal_audit_replay_oldest_age_seconds')).toContain(
      'caracal_audit_replay_oldest_age_seconds 7',
    );
    await spool.drain(async () => {}, { max: 1 });
    expect(spool.oldestAgeSeconds()).toBe(2);
    await spool.close();
  });

  it('drains every acknowledged append, in order, after kill -9 of the appending process (twice)', async () => {
    const dir = tempDir();
    const acked1 = await runAndKill(dir, 0, 400);
    const acked2 = await runAndKill(dir, 1_000_000, 400);
    expect(acked1.length).toBeGreaterThanOrEqual(400);

    const spool = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
    const drained = await drainAll(spool);
    const set = new Set(drained);
    expect(set.size).toBe(drained.length); // no duplicates
    for (const s of [...acked1, ...acked2]) expect(set.has(s)).toBe(true);
    for (let i = 1; i < drained.length; i++) expect(drained[i]!).toBeGreaterThan(drained[i - 1]!);
    // Every run's records are there without holes up to its last durable append.
    const run1 = drained.filter((s) => s < 1_000_000);
    expect(run1).toEqual(Array.from({ length: run1.length }, (_, i) => i + 1));
    expect(spool.status().entries).toBe(0);
    await spool.close();
  }, 30_000);

  it('detects and reports a torn or garbled tail while the intact prefix drains', async () => {
    for (const damage of ['truncate', 'garble'] as const) {
      const dir = tempDir();
      const first = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
      for (let i = 1; i <= 20; i++) await first.append({ seq: i, pad: 'abcdefgh' });
      await first.close();
      const [seg] = segments(dir);
      const path = join(dir, seg!);
      const size = statSync(path).size;
      if (damage === 'truncate') truncateSync(path, size - 5);
      else {
        const buf = readFileSync(path);
        buf[size - 3] = buf[size - 3]! ^ 0xff;
        writeFileSync(path, buf);
      }

      const lines: string[] = [];
      const logger = createLogger({
        service: 'test',
        destination: new Writable({
          write(chunk, _enc, cb) {
            lines.push(String(chunk));
            cb();
          },
        }),
      });
      const registry = new Registry();
      const spool = await createReplaySpool<Ev>({ dir, clock: systemClock, logger, metrics: { registry } });
      const status = spool.status();
      expect(status.entries).toBe(19);
      expect(status.corrupt).toBe(1);
      expect(status.corruptions[0]).toMatchObject({ file: seg });
      expect(status.corruptBytes).toBeGreaterThan(0);
      expect(lines.some((l) => l.includes('corrupt'))).toBe(true);
      expect(await registry.getSingleMetricAsString('caracal_audit_replay_corrupt_regions')).toContain(
        'caracal_audit_replay_corrupt_regions 1',
      );
      // New appends are not hidden behind the damage.
      await spool.append({ seq: 21 });
      expect(await drainAll(spool)).toEqual([...Array.from({ length: 19 }, (_, i) => i + 1), 21]);
      await spool.close();
      // The damaged bytes stay on disk, quarantined and still reported.
      expect(segments(dir, '.corrupt')).toEqual([seg!.replace('.log', '.corrupt')]);
      const reopened = await createReplaySpool<Ev>({ dir, clock: systemClock, logger: silentLogger() });
      expect(reopened.status()).toMatchObject({ entries: 0, corrupt: 1 });
      await reopened.close();
    }
  });

  it('refuses a spool directory owned by a live process', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'LOCK'), `${process.ppid}\n`);
    await expect(
      createReplaySpool({ dir, clock: systemClock, logger: silentLogger() }),
    ).rejects.toMatchObject({
      code: 'spool_locked',
    });
  });

  it('batches concurrent appends into few fsyncs and drains in the background', async () => {
    const dir = tempDir();
    const spool = await createReplaySpool<Ev>({
      dir,
      fsyncIntervalMs: 10,
      clock: systemClock,
      logger: silentLogger(),
    });
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 2000 }, (_, i) => spool.append({ seq: i + 1 })));
    // One fsync per record would take far longer on any disk; one per window is a handful.
    expect(performance.now() - t0).toBeLessThan(2000);
    const got: number[] = [];
    let down = true;
    const drainer = spool.startDrainer({
      intervalMs: 20,
      publish: async (e) => {
        if (down) throw new Error('bus down');
        got.push(e.seq);
      },
    });
    await new Promise((r) => setTimeout(r, 60));
    expect(got).toEqual([]);
    down = false;
    drainer.kick();
    const end = Date.now() + 5000;
    while (got.length < 2000 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await drainer.stop();
    expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    await spool.close();
  });
});
