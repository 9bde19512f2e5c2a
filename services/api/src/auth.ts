import { createHash, timingSafeEqual } from 'node:crypto';
import { CaracalError, type Keyring } from '@caracal/core';
import { authenticateAdminKey, scopesAllow } from '@caracal/state';
import type { Db } from '@caracal/store';
import type { FastifyRequest } from 'fastify';

/** Who is calling: the bootstrap token, or an admin key with its scopes. */
export interface Principal {
  /** Recorded as the actor of every change: the admin key id, or 'bootstrap'. */
  actor: string;
  scopes: readonly string[];
}

export interface AuthOptions {
  db: Db;
  keyring: Keyring;
  adminToken: string;
}

/** Compare without leaking length or content through timing: both sides are hashed to 32 bytes first. */
function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb);
}

/** The principal of a request's `Authorization: Bearer …`; 401 `unauthorized` when absent or unknown. */
export async function authenticate(req: FastifyRequest, opts: AuthOptions): Promise<Principal> {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer +(\S+)\s*$/i.exec(header) : null;
  if (!m) {
    throw new CaracalError(
      'unauthorized',
      401,
      'Send an admin token or admin API key as Authorization: Bearer <token>.',
    );
  }
  const token = m[1]!;
  if (opts.adminToken.length > 0 && sameSecret(token, opts.adminToken))
    return { actor: 'bootstrap', scopes: ['admin'] };
  const key = await authenticateAdminKey(opts.db, opts.keyring, token);
  if (!key)
    throw new CaracalError(
      'unauthorized',
      401,
      'The bearer token is not a valid admin token or admin API key.',
    );
  return { actor: key.id, scopes: key.scopes };
}

/** 403 `forbidden_scope` unless the principal's scopes cover this method on this zone (or global route). */
export function authorize(
  p: Principal,
  req: { method: string; zoneId?: string; globalOnly?: boolean },
): void {
  if (scopesAllow(p.scopes, req)) return;
  const what = req.zoneId !== undefined && !req.globalOnly ? `zone '${req.zoneId}'` : 'this global resource';
  throw new CaracalError('forbidden_scope', 403, `Your key's scopes do not allow ${req.method} on ${what}.`, {
    scopes: p.scopes,
  });
}
