import { CaracalError, type Clock, type Logger } from '@caracal/core';
import { type MessageSealer, type MessageSigner, openMessage } from './signing.js';
import type { RawEntry, StreamTransport } from './transport.js';
import {
  type Bus,
  type BusEntry,
  type ClaimOptions,
  DEFAULT_CLAIM_IDLE_MS,
  DEFAULT_MAX_DELIVERIES,
  type DlqEntry,
  type FailOptions,
  type PublishInput,
  type ReadOptions,
  type SealedMessage,
  type StartAt,
} from './types.js';

const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const MAX_ERROR_CHARS = 2000;

/** Stream names become Redis keys and SQL values; `:` is reserved for `<stream>:dlq`. */
export function checkStreamName(stream: string): string {
  if (!STREAM_NAME.test(stream)) {
    throw new CaracalError(
      'bus_stream_invalid',
      400,
      `Stream name '${stream}' must match ${STREAM_NAME.source}.`,
    );
  }
  return stream;
}

function checkName(what: string, name: string): string {
  if (!NAME.test(name))
    throw new CaracalError('bus_name_invalid', 400, `${what} '${name}' must match ${NAME.source}.`);
  return name;
}

/** Error text stored with a failed entry: name and message, bounded. */
export function describeError(err: unknown): string {
  const text =
    err instanceof CaracalError
      ? `${err.code}: ${err.detail}`
      : err instanceof Error
        ? `${err.name}: ${err.message}`
        : String(err);
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}

export interface SignedBusDeps {
  transport: StreamTransport;
  signer: MessageSigner;
  sealer: MessageSealer;
  clock: Clock;
  logger: Logger;
  maxDeliveries?: number;
}

/** The Bus over any transport: stamps and signs on the way in, verifies and applies the DLQ policy on the way out. */
export class SignedBus implements Bus {
  readonly kind: 'redis' | 'postgres';
  readonly producerId: string;
  private readonly t: StreamTransport;
  private readonly maxDeliveries: number;

  constructor(private readonly deps: SignedBusDeps) {
    this.t = deps.transport;
    this.kind = deps.transport.kind;
    this.producerId = deps.sealer.producerId;
    this.maxDeliveries = deps.maxDeliveries ?? DEFAULT_MAX_DELIVERIES;
  }

  seal<T>(stream: string, input: PublishInput<T>): SealedMessage {
    return this.deps.sealer.seal(checkStreamName(stream), input);
  }

  publish<T>(stream: string, input: PublishInput<T>): Promise<string> {
    return this.publishSealed(this.seal(stream, input));
  }

  publishSealed(sealed: SealedMessage): Promise<string> {
    return this.t.append(checkStreamName(sealed.stream), sealed.body, sealed.sig);
  }

  ensureGroup(stream: string, group: string, startAt: StartAt = '0'): Promise<void> {
    return this.t.ensureGroup(checkStreamName(stream), checkName('Group', group), startAt);
  }

  async read(stream: string, group: string, consumer: string, opts: ReadOptions = {}): Promise<BusEntry[]> {
    checkStreamName(stream);
    checkName('Group', group);
    checkName('Consumer', consumer);
    const raw = await this.t.readNew(stream, group, consumer, opts.count ?? 32, opts.blockMs ?? 0);
    return this.admit(stream, group, raw, Number.POSITIVE_INFINITY);
  }

  async claimIdle(
    stream: string,
    group: string,
    consumer: string,
    minIdleMs = DEFAULT_CLAIM_IDLE_MS,
    opts: ClaimOptions = {},
  ): Promise<BusEntry[]> {
    checkStreamName(stream);
    checkName('Group', group);
    checkName('Consumer', consumer);
    const raw = await this.t.claimIdle(stream, group, consumer, minIdleMs, opts.count ?? 32);
    return this.admit(stream, group, raw, opts.maxDeliveries ?? this.maxDeliveries);
  }

  /** Forged entries and entries past their delivery budget go to the DLQ; the rest are handed out. */
  private async admit(
    stream: string,
    group: string,
    raw: RawEntry[],
    maxDeliveries: number,
  ): Promise<BusEntry[]> {
    const out: BusEntry[] = [];
    for (const r of raw) {
      const message = openMessage(this.deps.signer, stream, r.body, r.sig);
      if (!message) {
        const error = r.sig ? 'signature does not verify' : 'unsigned message';
        this.deps.logger.warn({ stream, group, id: r.id, error }, 'bus: rejected message moved to DLQ');
        await this.t.moveToDlq(stream, group, r.id, r.deliveries, {
          reason: 'bad_signature',
          error,
          deadAt: this.deps.clock.now(),
        });
        continue;
      }
      if (r.deliveries > maxDeliveries) {
        const error =
          r.lastError ?? `not acked after ${maxDeliveries} deliveries (consumer crashed or hung?)`;
        this.deps.logger.warn(
          { stream, group, id: r.id, deliveries: r.deliveries },
          'bus: entry moved to DLQ',
        );
        await this.t.moveToDlq(stream, group, r.id, r.deliveries, {
          reason: 'max_deliveries',
          error,
          deadAt: this.deps.clock.now(),
        });
        continue;
      }
      const entry: BusEntry = { id: r.id, stream, message, deliveries: r.deliveries };
      if (r.replayOf !== undefined) entry.replayOf = r.replayOf;
      if (r.lastError !== undefined) entry.lastError = r.lastError;
      out.push(entry);
    }
    return out;
  }

  ack(stream: string, group: string, ids: string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return this.t.ack(checkStreamName(stream), group, ids);
  }

  async fail(
    stream: string,
    group: string,
    entry: BusEntry,
    error: unknown,
    opts: FailOptions = {},
  ): Promise<'retry' | 'dead'> {
    checkStreamName(stream);
    const text = describeError(error);
    const max = opts.maxDeliveries ?? this.maxDeliveries;
    if (entry.deliveries >= max) {
      const moved = await this.t.moveToDlq(stream, group, entry.id, entry.deliveries, {
        reason: 'max_deliveries',
        error: text,
        deadAt: this.deps.clock.now(),
      });
      if (moved)
        this.deps.logger.warn({ stream, group, id: entry.id, error: text }, 'bus: entry moved to DLQ');
      return moved ? 'dead' : 'retry';
    }
    await this.t.recordError(stream, group, entry.id, text);
    return 'retry';
  }

  touch(stream: string, group: string, consumer: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.t.touch(checkStreamName(stream), group, consumer, ids);
  }

  pendingCount(stream: string, group: string): Promise<number> {
    return this.t.pendingCount(checkStreamName(stream), group);
  }

  lag(stream: string, group: string): Promise<number> {
    return this.t.lag(checkStreamName(stream), group);
  }

  length(stream: string): Promise<number> {
    return this.t.length(checkStreamName(stream));
  }

  async dlqList(stream: string, opts: { count?: number } = {}): Promise<DlqEntry[]> {
    const raw = await this.t.dlqList(checkStreamName(stream), opts.count ?? 100);
    return raw.map((d) => {
      const message = openMessage(this.deps.signer, stream, d.body, d.sig);
      return message ? { ...d, message } : { ...d };
    });
  }

  dlqSize(stream: string): Promise<number> {
    return this.t.dlqSize(checkStreamName(stream));
  }

  async dlqReplay(stream: string, ids?: string[]): Promise<string[]> {
    checkStreamName(stream);
    // By default only entries that failed in a handler: a forged entry would just bounce back.
    const which =
      ids ??
      (await this.t.dlqList(stream, 1000)).filter((d) => d.reason === 'max_deliveries').map((d) => d.id);
    if (which.length === 0) return [];
    const replayed = await this.t.dlqReplay(stream, which);
    this.deps.logger.info({ stream, count: replayed.length }, 'bus: DLQ entries replayed');
    return replayed;
  }

  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.t.ping();
    return performance.now() - t0;
  }

  close(): Promise<void> {
    return this.t.close();
  }
}
