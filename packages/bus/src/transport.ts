import type { DlqEntry, DlqReason, StartAt } from './types.js';

/** An entry as stored, before its signature is checked. */
export interface RawEntry {
  id: string;
  /** Missing when a writer put other fields into the entry. */
  body?: string;
  sig?: string;
  replayOf?: string;
  deliveries: number;
  lastError?: string;
}

export interface DeadLetter {
  reason: DlqReason;
  error: string;
  deadAt: number;
}

export type RawDlqEntry = Omit<DlqEntry, 'message'>;

/**
 * What a backend (Redis Streams, Postgres tables) provides; `SignedBus` adds signing, verification
 * and the DLQ policy on top, so both backends share those semantics by construction.
 */
export interface StreamTransport {
  readonly kind: 'redis' | 'postgres';
  append(stream: string, body: string, sig: string, replayOf?: string): Promise<string>;
  ensureGroup(stream: string, group: string, startAt: StartAt): Promise<void>;
  readNew(
    stream: string,
    group: string,
    consumer: string,
    count: number,
    blockMs: number,
  ): Promise<RawEntry[]>;
  claimIdle(
    stream: string,
    group: string,
    consumer: string,
    minIdleMs: number,
    count: number,
  ): Promise<RawEntry[]>;
  ack(stream: string, group: string, ids: string[]): Promise<number>;
  recordError(stream: string, group: string, id: string, error: string): Promise<void>;
  /**
   * Atomically: copy the stored entry (body and signature as found) to the DLQ and remove it from the
   * group's pending entries; false if it was no longer pending (someone else acked or moved it).
   */
  moveToDlq(
    stream: string,
    group: string,
    id: string,
    deliveries: number,
    dead: DeadLetter,
  ): Promise<boolean>;
  touch(stream: string, group: string, consumer: string, ids: string[]): Promise<void>;
  pendingCount(stream: string, group: string): Promise<number>;
  lag(stream: string, group: string): Promise<number>;
  length(stream: string): Promise<number>;
  dlqList(stream: string, count: number): Promise<RawDlqEntry[]>;
  dlqSize(stream: string): Promise<number>;
  /** Atomically per entry: append to the stream with replayOf = original id, delete from the DLQ. */
  dlqReplay(stream: string, ids: string[]): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
