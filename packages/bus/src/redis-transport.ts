import { CaracalError, type Logger } from '@caracal/core';
import { Redis, type RedisOptions } from 'ioredis';
import type { DeadLetter, RawDlqEntry, RawEntry, StreamTransport } from './transport.js';
import type { DlqReason, StartAt } from './types.js';

export interface RedisTransportOptions {
  url: string;
  /** Prepended to every key, so tests and tenants never collide; default `caracal:bus:`. */
  keyPrefix?: string;
  logger: Logger;
  /** A non-blocking command that gets no answer within this fails with bus_unavailable; default 3000. */
  commandTimeoutMs?: number;
  /** How long a command waits for a connection that is (re)connecting before failing; default 500. */
  readyTimeoutMs?: number;
}

// Lua keeps each multi-step change atomic, so an entry reaches the DLQ exactly once
// and a claim reports the delivery count it produced.
const CLAIM = `
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local out = {}
for _, p in ipairs(pending) do
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], p[1])
  local e = claimed[1]
  if e and e[2] then
    out[#out + 1] = { e[1], e[2], p[4] + 1, redis.call('HGET', KEYS[2], p[1]) }
  end
end
return out`;

const MOVE_TO_DLQ = `
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
redis.call('HDEL', KEYS[3], ARGV[2])
local m, s = '', ''
if found[1] then
  local f = found[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'm' then m = f[i + 1] elseif f[i] == 's' then s = f[i + 1] end
  end
end
return redis.call('XADD', KEYS[2], '*', 'm', m, 's', s, 'orig', ARGV[2], 'group', ARGV[1],
  'reason', ARGV[4], 'error', ARGV[5], 'deliveries', ARGV[3], 'at', ARGV[6])`;

// XCLAIM JUSTID resets the idle time without counting a delivery; only entries still ours.
const TOUCH = `
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if p[1] then redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID') end
end
return 0`;

const DLQ_REPLAY = `
local out = {}
for _, id in ipairs(ARGV) do
  local found = redis.call('XRANGE', KEYS[2], id, id)
  if found[1] then
    local f = found[1][2]
    local m, s, orig = '', '', ''
    for i = 1, #f, 2 do
      if f[i] == 'm' then m = f[i + 1] elseif f[i] == 's' then s = f[i + 1] elseif f[i] == 'orig' then orig = f[i + 1] end
    end
    out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'm', m, 's', s, 'r', orig)
    redis.call('XDEL', KEYS[2], id)
  end
end
return out`;

interface ScriptedRedis extends Redis {
  busClaim(stream: string, errors: string, ...args: (string | number)[]): Promise<unknown[]>;
  busMoveToDlq(
    stream: string,
    dlq: string,
    errors: string,
    ...args: (string | number)[]
  ): Promise<string | null>;
  busDlqReplay(stream: string, dlq: string, ...ids: string[]): Promise<string[]>;
  busTouch(stream: string, ...args: string[]): Promise<number>;
}

// Server answers that mean "cannot take this now" rather than "bad request".
const TRANSIENT_REPLIES = ['OOM', 'READONLY', 'LOADING', 'MASTERDOWN', 'BUSY', 'CLUSTERDOWN', 'TRYAGAIN'];

/** Connection trouble becomes bus_unavailable (503) so callers spool or fail closed; never a hang. */
export function mapRedisError(err: unknown, what: string): CaracalError {
  if (err instanceof CaracalError) return err;
  const e = err as { name?: string; message?: string } | undefined;
  const msg = e?.message ?? String(err);
  if (e?.name === 'ReplyError' && !TRANSIENT_REPLIES.some((p) => msg.startsWith(p))) {
    if (msg.startsWith('NOGROUP'))
      return new CaracalError('bus_no_group', 409, `Redis ${what}: ${msg}`, {}, err);
    return new CaracalError('bus_error', 500, `Redis ${what}: ${msg}`, {}, err);
  }
  return new CaracalError('bus_unavailable', 503, `Bus unavailable (redis ${what}): ${msg}`, {}, err);
}

function fieldsToMap(fields: unknown): Map<string, string> {
  const m = new Map<string, string>();
  if (!Array.isArray(fields)) return m;
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(String(fields[i]), String(fields[i + 1]));
  return m;
}

function toRaw(id: string, fields: unknown, deliveries: number, lastError?: unknown): RawEntry {
  const f = fieldsToMap(fields);
  const raw: RawEntry = { id, deliveries };
  const body = f.get('m');
  const sig = f.get('s');
  const replayOf = f.get('r');
  if (body !== undefined) raw.body = body;
  if (sig) raw.sig = sig;
  if (replayOf) raw.replayOf = replayOf;
  if (typeof lastError === 'string') raw.lastError = lastError;
  return raw;
}

/** Redis Streams: XADD / XREADGROUP / XACK / XPENDING / XCLAIM / XINFO, one key per stream. */
export class RedisTransport implements StreamTransport {
  readonly kind = 'redis' as const;
  private readonly redis: ScriptedRedis;
  /** Blocking reads get a connection per consumer, so one BLOCK never stalls other commands. */
  private readonly blocking = new Map<string, Redis>();
  private readonly prefix: string;
  private readonly readyTimeoutMs: number;
  private readonly baseOptions: RedisOptions;
  private closed = false;
  private lastErrorLogAt = 0;
  private readonly waiting = new Map<Redis, Promise<void>>();

  constructor(private readonly opts: RedisTransportOptions) {
    this.prefix = opts.keyPrefix ?? 'caracal:bus:';
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 500;
    this.baseOptions = {
      lazyConnect: true,
      protocol: 2,
      // Fail fast instead of queueing or replaying: a caller that cannot publish now spools the event,
      // and a command cut off with its connection is rejected, never silently resent later.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    };
    this.redis = this.connection({
      commandTimeout: opts.commandTimeoutMs ?? 3000,
      enableAutoPipelining: true,
    }) as ScriptedRedis;
    this.redis.defineCommand('busClaim', { numberOfKeys: 2, lua: CLAIM });
    this.redis.defineCommand('busMoveToDlq', { numberOfKeys: 3, lua: MOVE_TO_DLQ });
    this.redis.defineCommand('busDlqReplay', { numberOfKeys: 2, lua: DLQ_REPLAY });
    this.redis.defineCommand('busTouch', { numberOfKeys: 1, lua: TOUCH });
    this.redis.connect().catch(() => {}); // errors surface per command
  }

  private connection(extra: RedisOptions): Redis {
    const r = new Redis(this.opts.url, { ...this.baseOptions, ...extra });
    r.on('error', (err: Error) => {
      const now = Date.now();
      if (now - this.lastErrorLogAt > 5000) {
        this.lastErrorLogAt = now;
        this.opts.logger.warn({ err: err.message }, 'bus: redis connection error');
      }
    });
    return r;
  }

  // The {stream} hash tag keeps a stream, its DLQ and its error records in one Redis Cluster slot,
  // which the Lua scripts touching several of them need.
  private key(stream: string): string {
    return `${this.prefix}{${stream}}`;
  }
  private dlqKey(stream: string): string {
    return `${this.prefix}{${stream}}:dlq`;
  }
  private errorsKey(stream: string, group: string): string {
    return `${this.prefix}{${stream}}:errors:${group}`;
  }

  /** Wait briefly for a connection that is being established; fail at once when it is known down. */
  private async ready(r: Redis): Promise<void> {
    if (this.closed) throw new CaracalError('bus_unavailable', 503, 'Bus is closed.');
    if (r.status === 'ready') return;
    if (r.status === 'wait') r.connect().catch(() => {});
    if (r.status === 'end' || r.status === 'reconnecting' || r.status === 'close') {
      throw new CaracalError('bus_unavailable', 503, `Bus unavailable (redis ${r.status}).`);
    }
    // One waiter per connection, however many commands are waiting.
    let waiting = this.waiting.get(r);
    if (!waiting) {
      waiting = new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          clearTimeout(timer);
          r.off('ready', onReady);
          r.off('close', onClose);
          this.waiting.delete(r);
          if (err) reject(err);
          else resolve();
        };
        const onReady = () => done();
        const onClose = () =>
          done(
            new CaracalError('bus_unavailable', 503, 'Bus unavailable (redis connection refused or lost).'),
          );
        const timer = setTimeout(
          () =>
            done(
              new CaracalError(
                'bus_unavailable',
                503,
                `Bus unavailable (redis not ready after ${this.readyTimeoutMs} ms).`,
              ),
            ),
          this.readyTimeoutMs,
        );
        r.once('ready', onReady);
        r.once('close', onClose);
      });
      this.waiting.set(r, waiting);
    }
    await waiting;
  }

  private async run<T>(
    what: string,
    fn: (r: ScriptedRedis) => Promise<T>,
    conn: Redis = this.redis,
  ): Promise<T> {
    try {
      await this.ready(conn);
      return await fn(conn as ScriptedRedis);
    } catch (err) {
      throw mapRedisError(err, what);
    }
  }

  append(stream: string, body: string, sig: string, replayOf?: string): Promise<string> {
    const fields = replayOf ? ['m', body, 's', sig, 'r', replayOf] : ['m', body, 's', sig];
    return this.run('XADD', async (r) => (await r.xadd(this.key(stream), '*', ...fields)) as string);
  }

  ensureGroup(stream: string, group: string, startAt: StartAt): Promise<void> {
    return this.run('XGROUP CREATE', async (r) => {
      try {
        await r.xgroup('CREATE', this.key(stream), group, startAt, 'MKSTREAM');
      } catch (err) {
        if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
      }
    });
  }

  private blockingConnection(stream: string, group: string, consumer: string): Redis {
    const id = `${stream}\u0000${group}\u0000${consumer}`;
    let r = this.blocking.get(id);
    if (!r) {
      // blockingTimeout arms a client-side timer of BLOCK + grace, so a dead socket cannot hang a read.
      r = this.connection({ blockingTimeout: 1, blockingTimeoutGrace: 2000 });
      this.blocking.set(id, r);
    }
    return r;
  }

  async readNew(
    stream: string,
    group: string,
    consumer: string,
    count: number,
    blockMs: number,
  ): Promise<RawEntry[]> {
    const key = this.key(stream);
    const conn = blockMs > 0 ? this.blockingConnection(stream, group, consumer) : this.redis;
    const reply = await this.run(
      'XREADGROUP',
      (r) =>
        blockMs > 0
          ? r.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', key, '>')
          : r.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>'),
      conn,
    );
    const out: RawEntry[] = [];
    for (const [, entries] of (reply ?? []) as [string, [string, unknown][]][]) {
      for (const [id, fields] of entries) out.push(toRaw(id, fields, 1));
    }
    return out;
  }

  async claimIdle(
    stream: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    count: number,
  ): Promise<RawEntry[]> {
    const rows = await this.run('claim', (r) =>
      r.busClaim(
        this.key(stream),
        this.errorsKey(stream, group),
        group,
        consumer,
        Math.max(0, Math.floor(minIdleMs)),
        count,
      ),
    );
    return (rows as [string, unknown, number, unknown][]).map(([id, fields, deliveries, lastError]) =>
      toRaw(id, fields, Number(deliveries), lastError),
    );
  }

  ack(stream: string, group: string, ids: string[]): Promise<number> {
    return this.run('XACK', async (r) => {
      const res = await r
        .multi()
        .xack(this.key(stream), group, ...ids)
        .hdel(this.errorsKey(stream, group), ...ids)
        .exec();
      const [err, n] = res?.[0] ?? [new Error('transaction aborted'), 0];
      if (err) throw err;
      return Number(n);
    });
  }

  recordError(stream: string, group: string, id: string, error: string): Promise<void> {
    return this.run('HSET', async (r) => {
      await r.hset(this.errorsKey(stream, group), id, error);
    });
  }

  moveToDlq(
    stream: string,
    group: string,
    id: string,
    deliveries: number,
    dead: DeadLetter,
  ): Promise<boolean> {
    return this.run('move to DLQ', async (r) => {
      const res = await r.busMoveToDlq(
        this.key(stream),
        this.dlqKey(stream),
        this.errorsKey(stream, group),
        group,
        id,
        deliveries,
        dead.reason,
        dead.error,
        dead.deadAt,
      );
      return res !== null;
    });
  }

  touch(stream: string, group: string, consumer: string, ids: string[]): Promise<void> {
    return this.run('touch', async (r) => {
      await r.busTouch(this.key(stream), group, consumer, ...ids);
    });
  }

  pendingCount(stream: string, group: string): Promise<number> {
    return this.run('XPENDING', async (r) => {
      const res = (await r.xpending(this.key(stream), group)) as [number, ...unknown[]];
      return Number(res[0]);
    });
  }

  lag(stream: string, group: string): Promise<number> {
    return this.run('XINFO GROUPS', async (r) => {
      const key = this.key(stream);
      const groups = (await r.xinfo('GROUPS', key)) as unknown[][];
      const info = groups.map(fieldsToMapRaw).find((g) => g.get('name') === group);
      if (!info) throw new CaracalError('bus_no_group', 409, `No group '${group}' on stream '${stream}'.`);
      const pending = Number(info.get('pending') ?? 0);
      const lag = info.get('lag');
      if (lag !== null && lag !== undefined) return Number(lag) + pending;
      // Redis cannot tell the lag (entries were deleted): count what follows the last delivered id (capped).
      const after = await r.xrange(key, `(${String(info.get('last-delivered-id'))}`, '+', 'COUNT', 100_000);
      return after.length + pending;
    });
  }

  length(stream: string): Promise<number> {
    return this.run('XLEN', (r) => r.xlen(this.key(stream)));
  }

  dlqList(stream: string, count: number): Promise<RawDlqEntry[]> {
    return this.run('XRANGE', async (r) => {
      const rows = await r.xrange(this.dlqKey(stream), '-', '+', 'COUNT', count);
      return rows.map(([id, fields]) => {
        const f = fieldsToMap(fields);
        return {
          id,
          stream,
          originalId: f.get('orig') ?? '',
          group: f.get('group') ?? '',
          reason: (f.get('reason') ?? 'max_deliveries') as DlqReason,
          error: f.get('error') ?? '',
          deliveries: Number(f.get('deliveries') ?? 0),
          deadAt: Number(f.get('at') ?? 0),
          body: f.get('m') ?? '',
          sig: f.get('s') ?? '',
        };
      });
    });
  }

  dlqSize(stream: string): Promise<number> {
    return this.run('XLEN', (r) => r.xlen(this.dlqKey(stream)));
  }

  dlqReplay(stream: string, ids: string[]): Promise<string[]> {
    return this.run('DLQ replay', (r) => r.busDlqReplay(this.key(stream), this.dlqKey(stream), ...ids));
  }

  ping(): Promise<void> {
    return this.run('PING', async (r) => {
      await r.ping();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.redis, ...this.blocking.values()].map((r) => quit(r)));
    this.blocking.clear();
  }
}

function fieldsToMapRaw(fields: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(String(fields[i]), fields[i + 1]);
  return m;
}

/** QUIT when connected (flushes replies), otherwise just drop the socket; never waits long. */
async function quit(r: Redis): Promise<void> {
  if (r.status !== 'ready') {
    r.disconnect();
    return;
  }
  await Promise.race([r.quit().catch(() => r.disconnect()), new Promise((res) => setTimeout(res, 500))]);
  r.disconnect();
}
