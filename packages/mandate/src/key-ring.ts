import type { Clock } from '@caracal/core';
import { MANDATE_MAX_TTL_SEC } from './claims.js';
import { type Jwks, type KeySource, toPublicJwk, type VerificationKey } from './jwk.js';
import { generateSigningKey, type SigningKey } from './keys.js';

/** A rotated-out key: verifiable (public part only) until `retireAfter` (ms since the epoch). */
export interface RetiringKey {
  key: VerificationKey;
  retireAfter: number;
}

/** What a KeyRing holds, for its owner to persist (seal `current.privateJwk` at rest). */
export interface KeyRingState {
  zoneId: string;
  current: SigningKey;
  previous: RetiringKey[];
}

export interface KeyRingOptions {
  zoneId: string;
  current: SigningKey;
  previous?: RetiringKey[];
  clock: Clock;
  /** Longest mandate lifetime signed with a key (default: the largest use-class cap, 60 min). */
  maxTtlSec?: number;
  /** Verifiers' clock skew allowance, added to the retirement time (default 5 s). */
  clockSkewSec?: number;
}

/** One zone's signing keys: the current key and rotated-out keys still inside their verification window. */
export interface KeyRing extends KeySource {
  readonly zoneId: string;
  /** The key new mandates are signed with. */
  current(): SigningKey;
  /** Makes `next` (or a fresh key of the current algorithm) current; the old key stays verifiable until its last mandate expires. */
  rotate(next?: SigningKey): SigningKey;
  /** Public JWK Set of every verifiable key, current first (`GET /.well-known/jwks.json`). */
  jwks(): Jwks;
  /** Current state for persistence; retired keys already dropped. */
  state(): KeyRingState;
}

/** A zone's key ring with rotation windows driven by the injected clock. */
export function createKeyRing(options: KeyRingOptions): KeyRing {
  const { zoneId, clock } = options;
  const windowMs = ((options.maxTtlSec ?? MANDATE_MAX_TTL_SEC) + (options.clockSkewSec ?? 5)) * 1000;
  let current = options.current;
  let previous: RetiringKey[] = (options.previous ?? []).filter((p) => p.key.kid !== current.kid);

  function live(): RetiringKey[] {
    const now = clock.now();
    if (previous.some((p) => p.retireAfter <= now)) previous = previous.filter((p) => p.retireAfter > now);
    return previous;
  }

  return {
    zoneId,
    current: () => current,
    rotate(next = generateSigningKey(current.alg)) {
      if (next.kid === current.kid) throw new Error('rotation needs a key with a new kid');
      const old: VerificationKey = { kid: current.kid, alg: current.alg, publicJwk: toPublicJwk(current) };
      previous = [
        { key: old, retireAfter: clock.now() + windowMs },
        ...live().filter((p) => p.key.kid !== next.kid),
      ];
      current = next;
      return current;
    },
    lookup(kid, expectedZone) {
      if (expectedZone !== undefined && expectedZone !== zoneId) return undefined;
      if (kid === current.kid) return current;
      for (const p of live()) if (p.key.kid === kid) return p.key;
      return undefined;
    },
    jwks: () => ({ keys: [toPublicJwk(current), ...live().map((p) => toPublicJwk(p.key))] }),
    state: () => ({ zoneId, current, previous: live().slice() }),
  };
}
