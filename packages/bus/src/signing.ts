import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { CaracalError, type Clock } from '@caracal/core';
import type { BusMessage, PublishInput, SealedMessage } from './types.js';

export const MIN_HMAC_KEY_LENGTH = 32;
const DOMAIN = 'caracal.bus.v1';

/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, `undefined` members dropped,
 * non-finite numbers refused. Same value → same bytes, whoever encodes it.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new CaracalError('bus_message_invalid', 400, 'Non-finite number.');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value))
        return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
        return canonicalJson((obj as { toJSON: () => unknown }).toJSON());
      }
      const keys = Object.keys(obj).sort();
      let out = '{';
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        if (out.length > 1) out += ',';
        out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
      }
      return `${out}}`;
    }
    default:
      throw new CaracalError('bus_message_invalid', 400, `Cannot encode a ${typeof value} in a bus message.`);
  }
}

/** HMAC-SHA256 over `caracal.bus.v1 \n stream \n body`: binding the stream stops cross-stream replays. */
export class MessageSigner {
  private readonly keys: Buffer[];

  /** `key` signs; `previousKeys` still verify (rotation). */
  constructor(key: string, previousKeys: string[] = []) {
    for (const k of [key, ...previousKeys]) {
      if (typeof k !== 'string' || k.length < MIN_HMAC_KEY_LENGTH) {
        throw new CaracalError(
          'bus_config_invalid',
          500,
          `Bus HMAC key must be at least ${MIN_HMAC_KEY_LENGTH} characters.`,
        );
      }
    }
    this.keys = [key, ...previousKeys].map((k) => Buffer.from(k, 'utf8'));
  }

  sign(stream: string, body: string): string {
    return mac(this.keys[0]!, stream, body).toString('hex');
  }

  verify(stream: string, body: string, sig: string): boolean {
    if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return false;
    const given = Buffer.from(sig, 'hex');
    return this.keys.some((k) => timingSafeEqual(mac(k, stream, body), given));
  }
}

function mac(key: Buffer, stream: string, body: string): Buffer {
  return createHmac('sha256', key).update(`${DOMAIN}\n${stream}\n${body}`, 'utf8').digest();
}

/** Stamps producer id, epoch, per-stream sequence, time and event id, then signs. */
export class MessageSealer {
  private readonly seqs = new Map<string, number>();
  readonly epoch: number;

  constructor(
    readonly producerId: string,
    private readonly signer: MessageSigner,
    private readonly clock: Clock,
  ) {
    if (!producerId) throw new CaracalError('bus_config_invalid', 500, 'Bus producerId is required.');
    this.epoch = clock.now();
  }

  seal<T>(stream: string, input: PublishInput<T>): SealedMessage {
    if (!input || typeof input.type !== 'string' || !input.type) {
      throw new CaracalError('bus_message_invalid', 400, 'A bus message needs a type.');
    }
    const seq = (this.seqs.get(stream) ?? 0) + 1;
    const message: BusMessage<T> = {
      v: 1,
      eventId: input.eventId ?? randomUUID(),
      type: input.type,
      producerId: this.producerId,
      producerEpoch: this.epoch,
      seq,
      at: this.clock.now(),
      payload: input.payload,
    };
    const body = canonicalJson(message);
    this.seqs.set(stream, seq); // only after encoding succeeded, so a bad payload leaves no gap
    return { stream, body, sig: this.signer.sign(stream, body) };
  }
}

/** Verify and parse a stream entry body; undefined when forged, unsigned or malformed. */
export function openMessage(
  signer: MessageSigner,
  stream: string,
  body: string | undefined,
  sig: string | undefined,
): BusMessage | undefined {
  if (typeof body !== 'string' || typeof sig !== 'string') return undefined;
  if (!signer.verify(stream, body, sig)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const m = parsed as Partial<BusMessage>;
  if (
    !m ||
    typeof m !== 'object' ||
    m.v !== 1 ||
    typeof m.eventId !== 'string' ||
    typeof m.type !== 'string' ||
    typeof m.producerId !== 'string' ||
    typeof m.producerEpoch !== 'number' ||
    typeof m.seq !== 'number' ||
    typeof m.at !== 'number'
  ) {
    return undefined;
  }
  return m as BusMessage;
}
