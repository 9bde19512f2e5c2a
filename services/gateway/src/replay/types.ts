import { CaracalError } from '@caracal/core';

/**
 * Single-use mandate ids, shared by every Gateway replica. `consume` answers true exactly once per jti while
 * the mandate lives, false on a replay (or when the mandate has already expired), and throws
 * `replay_store_unavailable` (503) when the store cannot answer, so the Gateway denies: it never guesses true.
 */
export interface ReplayGuard {
  consume(jti: string, expiresAtMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Longest jti accepted; longer ones are refused before touching the store. */
export const MAX_JTI_LENGTH = 256;

/** Default extra life of a consumed jti past the mandate's exp: covers verifier leeway and replica clock skew. */
export const DEFAULT_LEEWAY_MS = 30_000;

export function checkJti(jti: string): void {
  if (jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
    throw new CaracalError('jti_invalid', 400, `A mandate jti must be 1–${MAX_JTI_LENGTH} characters.`);
  }
}

export function replayStoreUnavailable(backend: string, cause: unknown): CaracalError {
  return new CaracalError(
    'replay_store_unavailable',
    503,
    `Single use of the mandate cannot be checked (${backend} unavailable); the request is refused.`,
    {},
    cause,
  );
}
