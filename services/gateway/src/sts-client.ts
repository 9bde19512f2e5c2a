import { randomBytes } from 'node:crypto';
import { CaracalError, type Clock, gatewayServiceKey, type Keyring, signServiceCall } from '@caracal/core';
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import { Agent, request } from 'undici';
import { z } from 'zod';

const EXCHANGE_PATH = '/internal/gateway/exchange';

export { gatewayServiceKey };

/** `X-Caracal-Signature` value for one exchange call (see the STS's gateway-exchange.ts for the format). */
export function serviceSignature(key: string, nowMs: number, body: string): string {
  const t = String(Math.floor(nowMs / 1000));
  const n = randomBytes(16).toString('base64url');
  const s = signServiceCall(key, { method: 'POST', path: EXCHANGE_PATH, t, nonce: n, body });
  return `t=${t},n=${n},s=${s}`;
}

const exchangeAnswer = z.object({
  resource_mandate: z.string().min(1),
  upstream: z.object({
    url: z.string().url(),
    allowed_hosts: z.array(z.string()).min(1),
    // An STS older than this field never opted a resource in: private stays refused (fail closed).
    allow_private: z.boolean().default(false),
  }),
  credential: z.object({ header_name: z.string().min(1), header_value: z.string() }).nullable(),
  expires_at: z.number(),
});

/** What the STS answers for one request. */
export type StsExchange = z.infer<typeof exchangeAnswer>;

export interface StsExchangeRequest {
  mandate: string;
  method: string;
  path: string;
  resource: string;
}

/** The STS did not answer usefully (down, timeout, 5xx, garbage): counts against the circuit. */
class StsUnavailable extends Error {}

export interface StsClientOptions {
  stsUrl: string;
  keyring: Keyring;
  clock: Clock;
  timeoutMs: number;
  consecutiveFailures: number;
  halfOpenAfterMs: number;
  /** Called on every failed call (not on refusals) and on each circuit state change. */
  onError?: () => void;
  onStateChange?: (open: boolean) => void;
}

export interface StsClient {
  /** Exchange through the circuit; throws 502 `sts_exchange_failed`, 503 `sts_circuit_open`, or the STS's own refusal. */
  exchange(req: StsExchangeRequest): Promise<StsExchange>;
  /** While the circuit is not closed, try the STS's /health through it (recovers without traffic). */
  probe(): Promise<void>;
  state(): 'closed' | 'open' | 'half-open';
  close(): Promise<void>;
}

/** Gateway → STS calls behind one circuit breaker (cockatiel): N consecutive failures open it. */
export function createStsClient(opts: StsClientOptions): StsClient {
  const key = gatewayServiceKey(opts.keyring);
  const base = opts.stsUrl.replace(/\/$/, '');
  const agent = new Agent({
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    connectTimeout: opts.timeoutMs,
  });
  const breaker: CircuitBreakerPolicy = circuitBreaker(
    handleWhen((err) => err instanceof StsUnavailable),
    { halfOpenAfter: opts.halfOpenAfterMs, breaker: new ConsecutiveBreaker(opts.consecutiveFailures) },
  );
  breaker.onStateChange((s) => opts.onStateChange?.(s === CircuitState.Open || s === CircuitState.Isolated));

  async function call(req: StsExchangeRequest): Promise<StsExchange | CaracalError> {
    const body = JSON.stringify(req);
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${base}${EXCHANGE_PATH}`, {
        method: 'POST',
        dispatcher: agent,
        headers: {
          'content-type': 'application/json',
          'x-caracal-signature': serviceSignature(key, opts.clock.now(), body),
        },
        body,
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
    } catch (err) {
      opts.onError?.();
      throw new StsUnavailable(`STS unreachable: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = await res.body.json();
    } catch (err) {
      opts.onError?.();
      throw new StsUnavailable(`STS answer unreadable: ${(err as Error).message}`);
    }
    if (res.statusCode >= 500 || res.statusCode === 401) {
      // 401 here is our own service authentication failing: a deployment fault, not the caller's.
      const code = (json as { code?: unknown } | null)?.code;
      if (res.statusCode !== 401 || code === 'service_auth_failed') {
        opts.onError?.();
        // A refusal for a reason the STS explains (provider down, audit down) passes through; it is not an outage.
        if (res.statusCode === 503 && typeof code === 'string' && code !== 'shutting_down') {
          return new CaracalError(code, 503, String((json as { detail?: unknown }).detail ?? code));
        }
        throw new StsUnavailable(`STS answered ${res.statusCode} ${String(code)}`);
      }
    }
    if (res.statusCode >= 400) {
      const p = (json ?? {}) as { code?: unknown; detail?: unknown };
      return new CaracalError(
        typeof p.code === 'string' ? p.code : 'sts_refused',
        res.statusCode,
        typeof p.detail === 'string' ? p.detail : 'The STS refused the exchange.',
      );
    }
    const parsed = exchangeAnswer.safeParse(json);
    if (!parsed.success) {
      opts.onError?.();
      throw new StsUnavailable('STS answer does not match the exchange contract');
    }
    return parsed.data;
  }

  const state = (): 'closed' | 'open' | 'half-open' =>
    breaker.state === CircuitState.Closed
      ? 'closed'
      : breaker.state === CircuitState.HalfOpen
        ? 'half-open'
        : 'open';

  return {
    async exchange(req) {
      let out: StsExchange | CaracalError;
      try {
        out = await breaker.execute(() => call(req));
      } catch (err) {
        if (err instanceof BrokenCircuitError) {
          throw new CaracalError('sts_circuit_open', 503, 'The STS is failing; the Gateway refuses for now.');
        }
        throw new CaracalError('sts_exchange_failed', 502, 'The STS exchange failed.', {}, err);
      }
      if (out instanceof CaracalError) throw out;
      return out;
    },
    async probe() {
      if (breaker.state === CircuitState.Closed) return;
      await breaker
        .execute(async () => {
          try {
            const res = await request(`${base}/health`, {
              dispatcher: agent,
              signal: AbortSignal.timeout(opts.timeoutMs),
            });
            await res.body.dump();
            if (res.statusCode !== 200) throw new StsUnavailable(`STS health ${res.statusCode}`);
          } catch (err) {
            if (err instanceof StsUnavailable) throw err;
            throw new StsUnavailable((err as Error).message);
          }
        })
        .catch(() => {});
    },
    state,
    close: () => agent.close(),
  };
}
