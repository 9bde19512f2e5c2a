import { CaracalError, type Clock, type Logger } from '@caracal/core';
import type { Db } from '@caracal/store';
import { PgTransport } from './pg-transport.js';
import { RedisTransport } from './redis-transport.js';
import { SignedBus } from './signed-bus.js';
import { MessageSealer, MessageSigner } from './signing.js';
import type { Bus } from './types.js';

export interface BusOptions {
  /** redis://… selects Redis Streams; absent selects the Postgres stream on `db`. */
  redisUrl?: string;
  db?: Db;
  /** HMAC-SHA256 key (≥ 32 chars) every producer and consumer of the deployment shares. */
  hmacKey: string;
  /** Older keys still accepted when verifying (key rotation). */
  previousHmacKeys?: string[];
  /** Stamped on every message; make it unique per process (e.g. `gateway-<host>-<pid>`). */
  producerId: string;
  /** Redis key prefix (default `caracal:bus:`); ignored by the Postgres stream, which lives in the Db's schema. */
  keyPrefix?: string;
  clock: Clock;
  logger: Logger;
  /** Deliveries before an entry moves to the DLQ; default 8. */
  maxDeliveries?: number;
  /** Postgres stream: poll interval of blocked reads when no in-process publish wakes them; default 100. */
  pollIntervalMs?: number;
  /** Redis: timeout of one non-blocking command; default 3000. */
  commandTimeoutMs?: number;
  /** Redis: how long a command waits for a connection being established; default 500. */
  readyTimeoutMs?: number;
}

/** The bus for this deployment: Redis Streams when a URL is given, else the Postgres stream on `db`. */
export function createBus(opts: BusOptions): Bus {
  const signer = new MessageSigner(opts.hmacKey, opts.previousHmacKeys);
  const sealer = new MessageSealer(opts.producerId, signer, opts.clock);
  let transport: RedisTransport | PgTransport;
  if (opts.redisUrl) {
    transport = new RedisTransport({
      url: opts.redisUrl,
      keyPrefix: opts.keyPrefix,
      logger: opts.logger,
      commandTimeoutMs: opts.commandTimeoutMs,
      readyTimeoutMs: opts.readyTimeoutMs,
    });
  } else if (opts.db) {
    transport = new PgTransport({ db: opts.db, clock: opts.clock, pollIntervalMs: opts.pollIntervalMs });
  } else {
    throw new CaracalError('bus_config_invalid', 500, 'createBus needs a redisUrl or a db.');
  }
  return new SignedBus({
    transport,
    signer,
    sealer,
    clock: opts.clock,
    logger: opts.logger,
    maxDeliveries: opts.maxDeliveries,
  });
}
