import { CaracalError } from '@caracal/core';

/** The answer to one mint attempt. `resetAt` (ms epoch) is when the current window ends. */
export interface RateLimitDecision {
  allowed: boolean;
  /** Mints left in this window after this one (0 when denied). */
  remaining: number;
  resetAt: number;
}

/**
 * Fixed-window counter shared by every replica. `hit` counts one attempt; it throws
 * `rate_limit_unavailable` (503) when its store cannot answer, so the STS denies: it never guesses `allowed`.
 */
export interface RateLimiter {
  hit(key: string, limit: number, now: number): Promise<RateLimitDecision>;
  close(): Promise<void>;
}

/** Default mints per (zone, resource, application) per window. */
export const DEFAULT_MINT_LIMIT = 1000;
/** Default window: one minute. */
export const DEFAULT_WINDOW_MS = 60_000;

/** The limiter key of one (zone, resource, application); unambiguous whatever characters the ids hold. */
export function mintRateKey(zone: string, resource: string, application: string): string {
  return [zone, resource, application].map(encodeURIComponent).join(':');
}

/** Start of the fixed window holding `now`. */
export function windowStart(now: number, windowMs: number): number {
  return Math.floor(now / windowMs) * windowMs;
}

export function decide(count: number | undefined, limit: number, resetAt: number): RateLimitDecision {
  if (count === undefined || count > limit) return { allowed: false, remaining: 0, resetAt };
  return { allowed: true, remaining: limit - count, resetAt };
}

export function unavailable(backend: string, cause: unknown): CaracalError {
  return new CaracalError(
    'rate_limit_unavailable',
    503,
    `The mint rate limit cannot be checked (${backend} unavailable); minting is refused.`,
    {},
    cause,
  );
}
