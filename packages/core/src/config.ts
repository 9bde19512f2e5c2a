import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

/** Boolean from env or flags: accepts true/false/1/0/yes/no. */
export const flag = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const s = v.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off', ''].includes(s)) return false;
  return v;
}, z.boolean());

const port = z.coerce.number().int().min(0).max(65535);
const ms = z.coerce.number().int().min(0);

export const SERVICE_NAMES = ['api', 'console', 'sts', 'gateway', 'audit', 'coordinator'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** The product's configuration. Env names derive from paths: ports.api → CARACAL_PORTS_API. */
export const configSchema = z.strictObject({
  data: z.string().min(1).default(join(homedir(), '.caracal')),
  databaseUrl: z.string().url().optional(),
  /** Schema (search_path) of every table Caracal owns; lets several deployments share one server. */
  databaseSchema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lowercase SQL identifier')
    .default('caracal'),
  redisUrl: z.string().url().optional(),
  /** Prefix of every Redis key Caracal writes. */
  redisKeyPrefix: z.string().min(1).default('caracal:'),
  host: z.string().min(1).default('127.0.0.1'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Key for the HMAC every bus message carries; at least 32 characters. Generated into the data dir when absent. */
  busHmacKey: z.string().min(32, 'must be at least 32 characters').optional(),
  adminToken: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Master key for secrets at rest and client-secret digests; at least 32 characters. Generated into the data dir when absent. */
  masterKey: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Earlier master keys, still accepted for reading during rotation (env: comma-separated). */
  previousMasterKeys: z
    .preprocess(
      (v) =>
        typeof v === 'string'
          ? v
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : v,
      z.array(z.string().min(32, 'must be at least 32 characters')),
    )
    .default([]),
  shutdownGraceMs: ms.default(10_000),
  ports: z
    .strictObject({
      api: port.default(3000),
      console: port.default(3001),
      sts: port.default(8080),
      gateway: port.default(8081),
      audit: port.default(9090),
      coordinator: port.default(4000),
    })
    .prefault({}),
  http: z
    .strictObject({
      bodyLimitBytes: z.coerce.number().int().min(1024).default(1_048_576),
      requestTimeoutMs: ms.default(30_000),
      keepAliveTimeoutMs: ms.default(72_000),
    })
    .prefault({}),
  bus: z
    .strictObject({
      claimIdleMs: ms.default(30_000),
      maxDeliveries: z.coerce.number().int().min(1).default(8),
      pollMs: z.coerce.number().int().min(1).default(50),
    })
    .prefault({}),
  outbox: z
    .strictObject({
      maxAttempts: z.coerce.number().int().min(1).default(10),
      pollMs: z.coerce.number().int().min(1).default(200),
    })
    .prefault({}),
  sts: z
    .strictObject({
      /** `iss` of mandates; default http://<host>:<ports.sts>. */
      issuer: z.string().url().optional(),
      /** `aud` of mandates presented to the Gateway. */
      gatewayAudience: z.string().min(1).default('caracal-gateway'),
      /** How often zone versions are polled for changed state and policy. */
      zonePollMs: z.coerce.number().int().min(100).default(2_000),
      /** Policy older than this (since last confirmed current) makes the STS not ready. */
      policyStaleBudgetMs: z.coerce.number().int().min(1000).default(300_000),
      mintsPerMinute: z.coerce.number().int().min(1).default(1000),
    })
    .prefault({}),
  gateway: z
    .strictObject({
      /** Base URL of the STS the Gateway fetches JWKS from and exchanges mandates with; default http://<host>:<ports.sts>. */
      stsUrl: z.string().url().optional(),
      /** Let upstreams resolve to loopback, RFC 1918, CGNAT or ULA addresses (metadata and link-local stay refused). */
      allowPrivateUpstreams: flag.default(false),
      /** A mandate expiring within this many seconds is refused up front (it would die in flight). */
      mandatePreflightSec: z.coerce.number().int().min(0).max(300).default(35),
      /** Per STS exchange call (headers and body). */
      stsTimeoutMs: z.coerce.number().int().min(50).default(3_000),
      /** Consecutive STS exchange failures that open the circuit. */
      stsBreakerFailures: z.coerce.number().int().min(1).default(3),
      /** How long the open circuit refuses before one trial call (half-open). */
      stsBreakerHalfOpenMs: z.coerce.number().int().min(100).default(10_000),
    })
    .prefault({}),
  spool: z
    .strictObject({
      fsyncIntervalMs: z.coerce.number().int().min(0).default(5),
    })
    .prefault({}),
});

export type CaracalConfig = z.infer<typeof configSchema>;

/** Thrown when configuration is invalid; lists every problem at once. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface ConfigSources {
  /** Command-line flags, already parsed; highest precedence. Nested keys as objects. */
  flags?: Record<string, unknown>;
  /** Environment (CARACAL_*); defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** JSON config file path; lowest precedence before defaults. Also read from CARACAL_CONFIG. */
  file?: string;
}

type Shape = Record<string, z.ZodType>;

function objectShape(t: z.ZodType): Shape | undefined {
  let cur: z.ZodType = t;
  // Unwrap default/prefault/optional wrappers to find a nested object.
  for (let i = 0; i < 5; i++) {
    if (cur instanceof z.ZodObject) return cur.shape as Shape;
    const inner = (cur as unknown as { _zod: { def: { innerType?: z.ZodType } } })._zod.def.innerType;
    if (!inner) return undefined;
    cur = inner;
  }
  return undefined;
}

/** CARACAL_ name for a config path: ['ports','api'] → CARACAL_PORTS_API. */
export function envName(path: string[]): string {
  return `CARACAL_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function envLayer(shape: Shape, env: Record<string, string | undefined>, path: string[] = []) {
  const out: Record<string, unknown> = {};
  for (const [key, type] of Object.entries(shape)) {
    const p = [...path, key];
    const nested = objectShape(type);
    if (nested) {
      const sub = envLayer(nested, env, p);
      if (Object.keys(sub).length) out[key] = sub;
    } else {
      const v = env[envName(p)];
      if (v !== undefined) out[key] = v;
    }
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? merge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/** Load config with precedence flags > env > file > defaults; throws ConfigError with every problem. */
export function loadConfig<S extends z.ZodObject>(schema: S, sources: ConfigSources = {}): z.infer<S> {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  let fileLayer: Record<string, unknown> = {};
  const file = sources.file ?? env.CARACAL_CONFIG;
  if (file) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (!isPlainObject(parsed)) problems.push(`${file}: must hold a JSON object`);
      else fileLayer = parsed;
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  const merged = merge(merge(fileLayer, envLayer(schema.shape as Shape, env)), sources.flags ?? {});
  const result = schema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.map(String);
      const where = path.length ? `${path.join('.')} (${envName(path)})` : '(root)';
      problems.push(`${where}: ${issue.message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return result.data as z.infer<S>;
}
