import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { CaracalError, type Clock, type HttpApp, type Logger, sendProblem } from '@caracal/core';
import type { MandateClaims, MandateVerifier } from '@caracal/mandate';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import type { ReplayGuard } from './replay/index.js';
import type { StsClient, StsExchange } from './sts-client.js';
import { checkQuery, forward, joinUpstreamPath } from './upstream/index.js';

/**
 * Revocation seam: the Coordinator's revocation snapshot plugs in here. `isRevoked` answers from memory;
 * it throws (→ 503) when its snapshot is past its freshness budget. Default: no revocation source.
 */
export interface RevocationCheck {
  isRevoked(claims: MandateClaims): Promise<boolean> | boolean;
}

/** What the Gateway records per request: one decision before forwarding (or a denial), one outcome after. */
export interface GatewayAuditEvent {
  event_id: string;
  kind: 'decision' | 'denial' | 'outcome';
  request_id: string;
  method: string;
  path: string;
  resource?: string;
  zone_id?: string;
  application_id?: string;
  jti?: string;
  decision: 'allow' | 'deny' | 'error';
  code?: string;
  status?: number;
  bytes?: number;
  latency_ms?: number;
  at: number;
}

export interface ProxyDeps {
  clock: Clock;
  logger: Logger;
  verifier: MandateVerifier;
  replay: ReplayGuard;
  revocation: RevocationCheck | undefined;
  sts: StsClient;
  preflightSec: number;
  /** Set when the Gateway cannot govern requests at all (not installed): every proxied request gets it. */
  disabled?: CaracalError;
  /** The SSRF-checking dispatcher for an upstream; `allowPrivate` is the resource's own opt-in. */
  dispatcherFor(upstreamUrl: string, allowPrivate: boolean): Dispatcher;
  /** Decision events must be recorded (throws → 503); denial and outcome events are best effort. */
  audit(event: GatewayAuditEvent, required: boolean): Promise<void>;
  outcome(result: 'forwarded' | 'denied', code: string): void;
}

const MAX_BEARER = 4096;
const RESERVED_PATHS = new Set(['/health', '/ready', '/metrics']);
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const ZONE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Does allowlist entry `pattern` (`host`, `host:port`, `*.domain`) match `host` (URL.host form)? */
export function hostAllowed(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    const h = pattern.includes(':') ? host : host.replace(/:\d+$/, '');
    return h.endsWith(suffix) && h.length > suffix.length;
  }
  return pattern.includes(':') ? pattern === host : pattern === host.replace(/:\d+$/, '');
}

function unverifiedZone(token: string): string {
  let zoneId: unknown;
  try {
    zoneId = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'))?.zone_id;
  } catch {
    zoneId = undefined;
  }
  if (typeof zoneId !== 'string' || !ZONE_ID.test(zoneId)) {
    throw new CaracalError('mandate_malformed', 401, 'Mandate names no valid zone.');
  }
  return zoneId;
}

function hasBody(raw: IncomingMessage): boolean {
  const len = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/**
 * The governed request (DESIGN §4.2), in order: internal headers, bearer, resource header, path, mandate,
 * preflight window, single use, revocation, STS exchange, upstream allowlist, audit, forward.
 */
async function handle(deps: ProxyDeps, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const started = performance.now();
  const [pathname = '/', query] = splitUrl(req.url);
  const ctx: Omit<GatewayAuditEvent, 'event_id' | 'kind' | 'decision' | 'at'> = {
    request_id: req.id,
    method: req.method,
    path: pathname,
  };
  const deny = async (err: CaracalError): Promise<unknown> => {
    deps.outcome('denied', err.code);
    await deps.audit(
      {
        ...ctx,
        event_id: randomUUID(),
        kind: 'denial',
        decision: err.status >= 500 ? 'error' : 'deny',
        code: err.code,
        status: err.status,
        at: deps.clock.now(),
      },
      false,
    );
    if (err.status >= 500) req.log.warn({ code: err.code }, 'gateway request refused');
    return sendProblem(reply, err, req.url);
  };

  if (RESERVED_PATHS.has(pathname) || pathname.startsWith('/internal/') || pathname === '/internal') {
    return sendProblem(
      reply,
      new CaracalError('route_not_found', 404, `No route ${req.method} ${pathname}.`),
      req.url,
    );
  }
  if (deps.disabled) return deny(deps.disabled);
  let claims: MandateClaims;
  let resource: string;
  let exchanged: StsExchange;
  try {
    for (const name of Object.keys(req.headers)) {
      if (name.startsWith('x-caracal-') && name !== 'x-caracal-resource') {
        throw new CaracalError('internal_header_refused', 400, `Header ${name} is reserved for Caracal.`);
      }
    }
    const auth = req.headers.authorization;
    const m = typeof auth === 'string' ? /^Bearer ([^\s]+)$/i.exec(auth) : null;
    if (!m) throw new CaracalError('mandate_missing', 401, 'A Bearer mandate is required.');
    const token = m[1]!;
    if (token.length > MAX_BEARER) {
      throw new CaracalError('mandate_too_large', 401, `Mandate is longer than ${MAX_BEARER} bytes.`);
    }
    const header = req.headers['x-caracal-resource'];
    if (
      typeof header !== 'string' ||
      !header.startsWith('resource://') ||
      header.length > 512 ||
      /\s/.test(header)
    ) {
      throw new CaracalError(
        'resource_header_invalid',
        400,
        'X-Caracal-Resource must name one resource:// identifier.',
      );
    }
    resource = header;
    ctx.resource = resource;
    // Refused before any exchange: traversal and malformed queries never cost a mandate.
    joinUpstreamPath('', pathname);
    if (query) checkQuery(query);

    const zoneId = unverifiedZone(token);
    ctx.zone_id = zoneId;
    claims = await deps.verifier.verifyAsync(token, { use: 'gateway', zoneId, resource });
    ctx.application_id = claims.client_id;
    ctx.jti = claims.jti;
    if (claims.exp * 1000 - deps.clock.now() < deps.preflightSec * 1000) {
      throw new CaracalError('mandate_expiring', 401, 'Mandate expires too soon to be forwarded.');
    }
    if (!(await deps.replay.consume(claims.jti, claims.exp * 1000))) {
      throw new CaracalError('mandate_replayed', 401, 'Mandate was already used.');
    }
    if (deps.revocation) {
      let revoked: boolean;
      try {
        revoked = await deps.revocation.isRevoked(claims);
      } catch (err) {
        throw new CaracalError('revocation_unavailable', 503, 'Revocation state cannot be checked.', {}, err);
      }
      if (revoked) throw new CaracalError('mandate_revoked', 401, 'Mandate was revoked.');
    }
    exchanged = await deps.sts.exchange({ mandate: token, method: req.method, path: pathname, resource });
    const upstream = new URL(exchanged.upstream.url);
    if (!exchanged.upstream.allowed_hosts.some((p) => hostAllowed(p, upstream.host))) {
      throw new CaracalError(
        'upstream_host_not_allowed',
        403,
        'The resource upstream host is not allowlisted.',
      );
    }
  } catch (err) {
    return deny(
      err instanceof CaracalError
        ? err
        : new CaracalError('internal_error', 500, 'An internal error occurred.', {}, err),
    );
  }

  // Evidence first: a request whose decision cannot be recorded is not forwarded.
  try {
    await deps.audit(
      { ...ctx, event_id: randomUUID(), kind: 'decision', decision: 'allow', at: deps.clock.now() },
      true,
    );
  } catch {
    deps.outcome('denied', 'audit_unavailable');
    return sendProblem(
      reply,
      new CaracalError('audit_unavailable', 503, 'Evidence cannot be recorded; the request is refused.'),
      req.url,
    );
  }

  const aborter = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) aborter.abort(new Error('client closed'));
  });
  const credential = exchanged.credential
    ? { headerName: exchanged.credential.header_name, headerValue: exchanged.credential.header_value }
    : // A Caracal-aware upstream without a brokered credential receives the resource mandate to verify.
      { headerName: 'authorization', headerValue: `Bearer ${exchanged.resource_mandate}` };
  const raw = req.raw;
  const body = hasBody(raw) ? ((req.body as Readable | undefined) ?? raw) : null;
  let res: Awaited<ReturnType<typeof forward>>;
  try {
    res = await forward({
      dispatcher: deps.dispatcherFor(exchanged.upstream.url, exchanged.upstream.allow_private),
      method: req.method,
      upstreamUrl: exchanged.upstream.url,
      path: pathname,
      ...(query ? { query } : {}),
      headers: req.headers,
      body,
      credential,
      requestId: req.id,
      ...(typeof req.headers.traceparent === 'string' ? { traceparent: req.headers.traceparent } : {}),
      ...(typeof req.headers.tracestate === 'string' ? { tracestate: req.headers.tracestate } : {}),
      clientIp: req.ip,
      signal: aborter.signal,
    });
  } catch (err) {
    const e =
      err instanceof CaracalError ? err : new CaracalError('upstream_unavailable', 502, 'Upstream failed.');
    return deny(e);
  }

  deps.outcome('forwarded', String(res.status));
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  res.body.on('error', (err) => counted.destroy(err));
  reply.raw.once('close', () => {
    void deps.audit(
      {
        ...ctx,
        event_id: randomUUID(),
        kind: 'outcome',
        decision: 'allow',
        status: res.status,
        bytes,
        latency_ms: Math.round(performance.now() - started),
        ...(reply.raw.writableFinished ? {} : { code: 'response_incomplete' }),
        at: deps.clock.now(),
      },
      false,
    );
  });
  reply.code(res.status);
  for (const [name, value] of Object.entries(res.headers)) reply.header(name, value);
  return reply.send(res.body.pipe(counted));
}

function splitUrl(url: string): [string, string | undefined] {
  const q = url.indexOf('?');
  return q < 0 ? [url, undefined] : [url.slice(0, q), url.slice(q + 1)];
}

/**
 * Every method and path (except the health routes and /internal/*) to the proxy, in a scope without body
 * parsers: the request body is handed over as the raw stream, so it streams to the upstream unread.
 */
export function registerProxy(app: HttpApp, deps: ProxyDeps): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    scope.route({
      method: [...METHODS],
      url: '/*',
      exposeHeadRoute: false,
      handler: (req, reply) => handle(deps, req, reply),
    });
    scope.route({
      method: [...METHODS],
      url: '/',
      exposeHeadRoute: false,
      handler: (req, reply) => handle(deps, req, reply),
    });
  });
}
