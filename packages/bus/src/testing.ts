import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { type Clock, createLogger, type Logger, systemClock } from '@caracal/core';
import { migrate } from '@caracal/store';
import { openTestDb, type TestDb } from '@caracal/store/testing';
import { Redis } from 'ioredis';
import { type BusOptions, createBus } from './create-bus.js';
import { busMigrations } from './migrations/index.js';
import type { Bus } from './types.js';

export type BusKind = 'redis' | 'postgres' | 'pglite';
export const BUS_KINDS: readonly BusKind[] = ['redis', 'postgres', 'pglite'];

export const TEST_HMAC_KEY = 'test-hmac-key-0123456789abcdef-0123456789';

export function testRedisUrl(): string {
  return process.env.CARACAL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
}

export function silentLogger(): Logger {
  return createLogger({ service: 'bus-test', level: 'silent' });
}

/** A fresh backend (Redis key prefix, Postgres schema or PGlite dir) and a factory of buses over it. */
export interface BusFixture {
  kind: BusKind;
  bus(overrides?: Partial<BusOptions>): Bus;
  /** Append an entry with arbitrary fields, bypassing signing: what a client with raw write access can do. */
  forge(stream: string, body: string, sig?: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function openBusFixture(kind: BusKind, clock: Clock = systemClock): Promise<BusFixture> {
  const buses: Bus[] = [];
  const base = { hmacKey: TEST_HMAC_KEY, clock, logger: silentLogger() };
  let n = 0;
  if (kind === 'redis') {
    const keyPrefix = `test:bus:${Date.now().toString(36)}:${randomBytes(4).toString('hex')}:`;
    const raw = new Redis(testRedisUrl(), { protocol: 2 });
    return {
      kind,
      bus(overrides = {}) {
        const b = createBus({
          ...base,
          redisUrl: testRedisUrl(),
          keyPrefix,
          producerId: `p${++n}`,
          ...overrides,
        });
        buses.push(b);
        return b;
      },
      async forge(stream, body, sig) {
        const fields = sig === undefined ? ['m', body] : ['m', body, 's', sig];
        await raw.xadd(`${keyPrefix}{${stream}}`, '*', ...fields);
      },
      async cleanup() {
        await Promise.all(buses.map((b) => b.close()));
        const keys = await raw.keys(`${keyPrefix}*`);
        if (keys.length) await raw.del(...keys);
        raw.disconnect();
      },
    };
  }
  const testDb: TestDb = await openTestDb(kind);
  await migrate(testDb.db, busMigrations);
  return {
    kind,
    bus(overrides = {}) {
      const b = createBus({
        ...base,
        db: testDb.db,
        producerId: `p${++n}`,
        pollIntervalMs: 20,
        ...overrides,
      });
      buses.push(b);
      return b;
    },
    async forge(stream, body, sig) {
      await testDb.db.query(
        `WITH s AS (
           INSERT INTO bus_streams AS s (stream, last_id) VALUES ($1, 1)
           ON CONFLICT (stream) DO UPDATE SET last_id = s.last_id + 1 RETURNING last_id)
         INSERT INTO bus_entries (stream, id, body, sig, created_at) SELECT $1, last_id, $2::text, $3::text, 0 FROM s`,
        [stream, body, sig ?? ''],
      );
    },
    async cleanup() {
      await Promise.all(buses.map((b) => b.close()));
      await testDb.cleanup();
    },
  };
}

/** A TCP proxy in front of a real server that can cut every connection and refuse new ones (an outage). */
export interface TcpProxy {
  port: number;
  /** Destroy open connections and stop listening: clients see resets, then refused connections. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function tcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let listenPort = 0;
  const up = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(port, host);
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.on('error', () => {});
          sock.on('close', () => {
            sockets.delete(sock);
            (sock === client ? upstream : client).destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(listenPort, '127.0.0.1', () => {
        listenPort = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const down = () =>
    new Promise<void>((resolve) => {
      for (const sock of sockets) sock.destroy();
      if (!server?.listening) return resolve();
      server.close(() => resolve());
    });
  await up();
  return {
    get port() {
      return listenPort;
    },
    down,
    up,
    close: down,
  };
}
