/** A signed event as producers stamp it; the body of every stream entry. */
export interface BusMessage<T = unknown> {
  /** Envelope version. */
  v: 1;
  /** Unique id of the event (uuid); consumers deduplicate on it. */
  eventId: string;
  /** Event type, e.g. `audit.decision`, `revocation.created`. */
  type: string;
  producerId: string;
  /** Start time (ms) of the producing bus instance; (producerId, producerEpoch, seq) detects gaps. */
  producerEpoch: number;
  /** Per (producer incarnation, stream) sequence, starting at 1. */
  seq: number;
  /** Producer clock, ms since the epoch. */
  at: number;
  payload: T;
}

/** What a caller hands to `publish`; the bus stamps the rest. */
export interface PublishInput<T = unknown> {
  type: string;
  payload: T;
  /** Defaults to a fresh uuid. */
  eventId?: string;
}

/** A stamped and signed message, ready to publish now or later (the replay spool stores these). */
export interface SealedMessage {
  stream: string;
  /** Canonical JSON of the BusMessage: exactly the bytes the signature covers. */
  body: string;
  /** Hex HMAC-SHA256, see signing.ts. */
  sig: string;
}

/** One delivery of a verified stream entry to a consumer. */
export interface BusEntry<T = unknown> {
  /** Stream entry id (Redis `ms-seq`, Postgres decimal); opaque, ordered within a stream. */
  id: string;
  stream: string;
  message: BusMessage<T>;
  /** How many times this entry has been delivered to this group, this delivery included (1 on first read). */
  deliveries: number;
  /** Original entry id when this entry was replayed from the DLQ. */
  replayOf?: string;
  /** Last handler error recorded for this entry (set on redeliveries). */
  lastError?: string;
}

export type DlqReason = 'max_deliveries' | 'bad_signature';

/** An entry parked in `<stream>:dlq`. */
export interface DlqEntry {
  /** Id inside the DLQ. */
  id: string;
  stream: string;
  /** Id the entry had in the stream when it died. */
  originalId: string;
  group: string;
  reason: DlqReason;
  error: string;
  deliveries: number;
  /** Bus clock ms when moved. */
  deadAt: number;
  /** Raw body and signature as found (may be forged or malformed). */
  body: string;
  sig: string;
  /** Parsed body when it was verified; absent for bad signatures. */
  message?: BusMessage;
}

/** Where a new consumer group starts: `'0'` = the whole stream, `'$'` = only entries added from now on. */
export type StartAt = '0' | '$';

export interface ReadOptions {
  /** Max entries; default 32. */
  count?: number;
  /** Wait up to this long for new entries when none are there; 0 = return at once. */
  blockMs?: number;
}

export interface ClaimOptions {
  count?: number;
  /** Entries already delivered this many times move to the DLQ instead of being redelivered. */
  maxDeliveries?: number;
}

export interface FailOptions {
  maxDeliveries?: number;
}

/**
 * The stream interface. Redis Streams and the Postgres stream implement it with the same semantics:
 * at-least-once delivery per consumer group, pending entries until acked, claim of idle entries,
 * a DLQ after N deliveries, and only verified (HMAC-signed) messages ever reach a reader.
 */
export interface Bus {
  readonly kind: 'redis' | 'postgres';
  readonly producerId: string;
  /** Stamp, sign and append; returns the entry id. */
  publish<T>(stream: string, input: PublishInput<T>): Promise<string>;
  /** Stamp and sign without sending (to spool it when the bus is down). */
  seal<T>(stream: string, input: PublishInput<T>): SealedMessage;
  /** Append a message sealed earlier (spool drain); it keeps its event id and sequence. */
  publishSealed(sealed: SealedMessage): Promise<string>;
  /** Create the group if missing (idempotent). */
  ensureGroup(stream: string, group: string, startAt?: StartAt): Promise<void>;
  /** Entries never delivered to the group; they become pending for `consumer`. */
  read(stream: string, group: string, consumer: string, opts?: ReadOptions): Promise<BusEntry[]>;
  ack(stream: string, group: string, ids: string[]): Promise<number>;
  /** Record a handler failure; moves the entry to the DLQ when it has had maxDeliveries deliveries. */
  fail(
    stream: string,
    group: string,
    entry: BusEntry,
    error: unknown,
    opts?: FailOptions,
  ): Promise<'retry' | 'dead'>;
  /** Take over entries pending longer than minIdleMs (default 30 s), counting a new delivery. */
  claimIdle(
    stream: string,
    group: string,
    consumer: string,
    minIdleMs?: number,
    opts?: ClaimOptions,
  ): Promise<BusEntry[]>;
  /**
   * Keep entries in hand: reset their idle time without counting a delivery, so a slow or retrying
   * consumer is not claimed from. Only entries still pending for `consumer` are touched.
   */
  touch(stream: string, group: string, consumer: string, ids: string[]): Promise<void>;
  /** Delivered but not yet acked. */
  pendingCount(stream: string, group: string): Promise<number>;
  /** Entries not yet delivered to the group plus pending ones. */
  lag(stream: string, group: string): Promise<number>;
  /** Entries in the stream (acked ones included; nothing is trimmed). */
  length(stream: string): Promise<number>;
  dlqList(stream: string, opts?: { count?: number }): Promise<DlqEntry[]>;
  /** Entries in `<stream>:dlq`. */
  dlqSize(stream: string): Promise<number>;
  /**
   * Move DLQ entries back to the stream as new entries (`replayOf` = the id they died with); returns
   * the new ids. Without ids: every `max_deliveries` entry (up to 1000). Signatures are never redone,
   * so a forged entry replayed by id lands in the DLQ again.
   */
  dlqReplay(stream: string, ids?: string[]): Promise<string[]>;
  /** Round trip to the backend in ms; throws `bus_unavailable`. */
  ping(): Promise<number>;
  close(): Promise<void>;
}

export const DEFAULT_MAX_DELIVERIES = 8;
export const DEFAULT_CLAIM_IDLE_MS = 30_000;
