/**
 * The forwarder: one request to the upstream, its response streamed back.
 *
 * Decisions:
 * - Cookies: Cookie and Set-Cookie are dropped unless the resource sets `forwardCookies`. The agent must act
 *   under the brokered credential only; a cookie could carry its own upstream session (as Authorization
 *   could, which is always dropped), and a Set-Cookie would hand it an upstream session usable without us.
 * - Location: an absolute (or scheme-relative, or root-relative) Location on the upstream's origin and inside
 *   its base path is rewritten to `publicBasePath + rest`; on the upstream's origin but outside the base path
 *   it is dropped (it would lead around the Gateway); other origins and path-relative references pass.
 * - Stream cut: `onChunk` returning false aborts the upstream request and fails `body` with `stream_cut`.
 *   The HTTP layer then closes the response without its terminating chunk (HTTP/1.1) or with RST_STREAM
 *   (h2), which every client sees as an error; trailers are not used (clients rarely surface them). For
 *   `text/event-stream` a final `event: caracal_error` is delivered first, best effort. A silent stream can be
 *   cut any time by destroying `body`.
 * - TRACE/CONNECT are never forwarded: TRACE would echo the injected credential back to the caller.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { CaracalError } from '@caracal/core';
import type { Dispatcher } from 'undici';
import { checkQuery, joinUpstreamPath } from './paths.js';

/** The brokered credential the Gateway injects; the caller's own header of that name is always removed. */
export interface InjectedCredential {
  headerName: string;
  headerValue: string;
}

export interface ForwardTimeouts {
  /** Time to the upstream's response headers; default: the dispatcher's. */
  headersMs?: number;
  /** Longest silence between response body chunks; default: the dispatcher's. */
  bodyMs?: number;
}

export interface ForwardRequest {
  /** Usually `createUpstreamDispatcher(policy)`: it enforces the SSRF policy at connect time. */
  dispatcher: Dispatcher;
  method: string;
  /** Base URL of the resource (`https://api.example.com/v1`); requests never leave its path. */
  upstreamUrl: string | URL;
  /** Path below the resource, raw (still percent-encoded) as received: `/users/42`. */
  path: string;
  /** Raw query string without '?'; passed through unchanged after validation. */
  query?: string;
  /** The caller's request headers (Node's lower-case form). */
  headers: IncomingHttpHeaders;
  body?: Readable | null;
  credential: InjectedCredential | undefined;
  requestId: string;
  /** The caller's W3C traceparent; a valid one is propagated, otherwise a new trace starts. */
  traceparent?: string;
  /** The caller's W3C tracestate; forwarded only alongside a valid traceparent. */
  tracestate?: string;
  clientIp: string;
  /** Scheme the client used to reach the Gateway, for X-Forwarded-Proto; default 'http'. */
  clientProto?: 'http' | 'https';
  timeouts?: ForwardTimeouts;
  signal?: AbortSignal;
  /** Called before each response body chunk is passed on; false cuts the stream (see `stream_cut`). */
  onChunk?: () => boolean;
  /** Forward Cookie and Set-Cookie (off by default: cookies can carry an upstream identity). */
  forwardCookies?: boolean;
  /** Public path under which the Gateway serves this resource, used to rewrite upstream Location headers. */
  publicBasePath?: string;
}

export interface ForwardResponse {
  status: number;
  headers: Record<string, string | string[]>;
  /** The upstream body, streamed; destroying it aborts the upstream request. */
  body: Readable;
  /** The traceparent sent upstream (propagated or generated). */
  traceparent: string;
}

// RFC 9110 §7.6.1 hop-by-hop headers, plus Proxy-* (prefix) handled below.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'http2-settings',
]);
// Request headers the caller may not set: identity, routing and our own namespace.
const REQUEST_DROP = new Set([
  'host',
  'authorization',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
  'expect', // undici refuses Expect; a body is sent without waiting for 100-continue
]);
const RESPONSE_DROP = new Set(['server', 'x-powered-by']);
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']); // TRACE would echo the injected credential
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
// How long a cut SSE stream waits for its consumer to take the final error event before failing anyway.
const SSE_CUT_GRACE_MS = 1_000;
const SSE_CUT_EVENT = Buffer.from('event: caracal_error\ndata: {"code":"stream_cut"}\n\n');

/** The W3C traceparent to send: the caller's when valid (version 00 exactly, or a later one), else a new one. */
export function resolveTraceparent(incoming: string | undefined): { value: string; propagated: boolean } {
  if (incoming) {
    const m = TRACEPARENT.exec(incoming);
    if (
      m &&
      m[1] !== 'ff' &&
      !(m[1] === '00' && m[5] !== undefined) &&
      !/^0+$/.test(m[2]!) &&
      !/^0+$/.test(m[3]!)
    ) {
      return { value: m[1] === '00' ? incoming : `00-${m[2]}-${m[3]}-${m[4]}`, propagated: true };
    }
  }
  const id = randomBytes(24).toString('hex');
  return { value: `00-${id.slice(0, 32)}-${id.slice(32)}-01`, propagated: false };
}

function connectionTokens(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  if (value === undefined) return out;
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

function isHopByHop(name: string, listed: Set<string>): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || listed.has(name);
}

function buildRequestHeaders(
  req: ForwardRequest,
  upstream: URL,
  traceparent: string,
  propagated: boolean,
): Record<string, string | string[]> {
  const listed = connectionTokens(req.headers.connection);
  const credentialName = req.credential?.headerName.toLowerCase();
  const out: Record<string, string | string[]> = {};
  for (const rawName in req.headers) {
    const value = req.headers[rawName];
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (isHopByHop(name, listed) || REQUEST_DROP.has(name) || name === credentialName) continue;
    if (name.startsWith('x-forwarded-') || name.startsWith('x-caracal-')) continue;
    if (name === 'cookie' && !req.forwardCookies) continue;
    if (name === 'content-length' && !req.body) continue;
    out[name] = value;
  }
  out['x-forwarded-for'] = req.clientIp;
  out['x-forwarded-proto'] = req.clientProto ?? 'http';
  const host = req.headers.host;
  if (typeof host === 'string' && host) out['x-forwarded-host'] = host;
  out['x-request-id'] = req.requestId;
  out.traceparent = traceparent;
  if (propagated && typeof req.tracestate === 'string' && req.tracestate.length <= 512) {
    out.tracestate = req.tracestate;
  }
  out.host = upstream.host;
  if (req.credential) out[credentialName!] = req.credential.headerValue;
  return out;
}

/**
 * Rewrite an upstream Location so the client stays behind the Gateway: a URL on the upstream's origin and
 * inside its base path becomes `publicBasePath + rest`; one on the upstream's origin outside the base path is
 * dropped (undefined); another origin, or a path-relative reference, passes unchanged.
 */
export function rewriteLocation(
  location: string,
  upstream: URL,
  basePath: string,
  publicBasePath: string,
): string | undefined {
  let target = location;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location) || location.startsWith('//')) {
    let url: URL;
    try {
      url = new URL(location, upstream);
    } catch {
      return undefined;
    }
    if (url.origin !== upstream.origin) return location;
    target = `${url.pathname}${url.search}${url.hash}`;
  } else if (!location.startsWith('/')) {
    return location;
  }
  const base = basePath.endsWith('/') ? basePath.slice(0, -1) : basePath;
  if (base) {
    const after = target.slice(base.length, base.length + 1);
    if (!target.startsWith(base) || (after !== '' && after !== '/' && after !== '?' && after !== '#')) {
      return undefined;
    }
  }
  const rest = target.slice(base.length);
  const pub = publicBasePath.endsWith('/') ? publicBasePath.slice(0, -1) : publicBasePath;
  const joined = `${pub}${rest}`;
  return joined.startsWith('/') ? joined : `/${joined}`;
}

function buildResponseHeaders(
  headers: IncomingHttpHeaders,
  req: ForwardRequest,
  upstream: URL,
): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (isHopByHop(name, listed) || RESPONSE_DROP.has(name)) continue;
    if (name === 'set-cookie' && !req.forwardCookies) continue;
    if (name === 'location') {
      const loc = rewriteLocation(
        Array.isArray(value) ? value[0]! : value,
        upstream,
        upstream.pathname,
        req.publicBasePath ?? '',
      );
      if (loc !== undefined) out.location = loc;
      continue;
    }
    out[name] = value;
  }
  return out;
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/** Map a transport error: ours pass through, timeouts → 504, the client leaving → 499, the rest → 502. */
export function mapUpstreamError(err: unknown, signal?: AbortSignal): CaracalError {
  if (err instanceof CaracalError) return err;
  if (signal?.aborted) {
    return new CaracalError(
      'client_closed_request',
      499,
      'The client went away before the upstream answered.',
      {},
      err,
    );
  }
  const code = (err as { code?: string } | null)?.code;
  if (code && TIMEOUT_CODES.has(code)) {
    return new CaracalError('upstream_timeout', 504, 'The upstream did not answer in time.', {}, err);
  }
  return new CaracalError(
    'upstream_unavailable',
    502,
    'The upstream could not be reached or broke off.',
    {},
    err,
  );
}

/** The response body handed to the caller: a plain Readable fed by the undici handler, with backpressure. */
class UpstreamBody extends Readable {
  controller: Dispatcher.DispatchController | undefined;
  finished = false;

  constructor(private readonly release: () => void) {
    super();
  }

  override _read(): void {
    this.controller?.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.release();
    if (!this.finished) {
      this.finished = true;
      this.controller?.abort(err ?? new Error('response body destroyed by the consumer'));
    }
    callback(err);
  }

  /** Cut: abort the upstream; for SSE deliver one last error event first, then fail the stream. */
  cutStream(sse: boolean): void {
    const err = new CaracalError(
      'stream_cut',
      403,
      'The Gateway cut the response stream (authorization ended).',
    );
    this.finished = true;
    this.controller?.abort(err);
    if (sse) {
      this.push(SSE_CUT_EVENT);
      this.failWhenDrained(err, Date.now() + SSE_CUT_GRACE_MS);
    } else {
      this.destroy(err);
    }
  }

  /** Fail the stream once the consumer has taken what is buffered (destroy would discard it), or at the deadline. */
  private failWhenDrained(err: CaracalError, deadline: number): void {
    if (this.destroyed) return;
    if (this.readableLength === 0 || Date.now() >= deadline) this.destroy(err);
    else setImmediate(() => this.failWhenDrained(err, deadline));
  }
}

/**
 * Forward one request upstream and stream the answer back. Refusals before dispatch (path traversal, bad
 * method or query, SSRF at connect time) throw CaracalError and never reach the upstream; transport failures
 * throw 502 `upstream_unavailable` or 504 `upstream_timeout`. Once headers arrive, status and body pass
 * through unchanged; a later failure (or an `onChunk` cut) destroys `body` with a CaracalError.
 */
export function forward(req: ForwardRequest): Promise<ForwardResponse> {
  const method = req.method.toUpperCase();
  if (!TOKEN.test(method) || FORBIDDEN_METHODS.has(method)) {
    return Promise.reject(new CaracalError('method_not_allowed', 405, `Method ${method} is not forwarded.`));
  }
  if (req.credential && !TOKEN.test(req.credential.headerName)) {
    return Promise.reject(
      new CaracalError('upstream_config_invalid', 500, 'The brokered credential header name is invalid.'),
    );
  }
  let upstream: URL;
  let path: string;
  try {
    upstream = typeof req.upstreamUrl === 'string' ? new URL(req.upstreamUrl) : req.upstreamUrl;
    if (
      (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') ||
      upstream.username ||
      upstream.password
    ) {
      throw new CaracalError(
        'upstream_config_invalid',
        500,
        'The resource upstream URL is not a plain http(s) URL.',
      );
    }
    path = joinUpstreamPath(upstream.pathname, req.path);
    if (req.query) path = `${path}?${checkQuery(req.query)}`;
  } catch (err) {
    return Promise.reject(
      err instanceof CaracalError
        ? err
        : new CaracalError('upstream_config_invalid', 500, 'The resource upstream URL is invalid.'),
    );
  }
  const { signal } = req;
  if (signal?.aborted) return Promise.reject(mapUpstreamError(signal.reason, signal));
  const trace = resolveTraceparent(req.traceparent);
  const headers = buildRequestHeaders(req, upstream, trace.value, trace.propagated);

  return new Promise<ForwardResponse>((resolve, reject) => {
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    const onAbort = () => controller?.abort(signal?.reason ?? new Error('aborted'));
    const release = () => signal?.removeEventListener('abort', onAbort);
    const body = new UpstreamBody(release);
    let sse = false;
    signal?.addEventListener('abort', onAbort, { once: true });

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        body.controller = c;
        if (signal?.aborted) c.abort(signal.reason ?? new Error('aborted'));
      },
      onResponseStart(_c, statusCode, responseHeaders) {
        if (statusCode < 200) return;
        settled = true;
        const ct = responseHeaders['content-type'];
        sse = typeof ct === 'string' && ct.toLowerCase().startsWith('text/event-stream');
        resolve({
          status: statusCode,
          headers: buildResponseHeaders(responseHeaders, req, upstream),
          body,
          traceparent: trace.value,
        });
      },
      onResponseData(c, chunk) {
        if (body.finished) return;
        if (req.onChunk && !req.onChunk()) {
          body.cutStream(sse);
          return;
        }
        if (!body.push(chunk)) c.pause();
      },
      onResponseEnd() {
        if (body.finished) return;
        body.finished = true;
        release();
        body.push(null);
      },
      onResponseError(_c, err) {
        release();
        const mapped = mapUpstreamError(err, signal);
        if (!settled) {
          settled = true;
          body.finished = true;
          reject(mapped);
          body.destroy();
        } else if (!body.finished) {
          body.finished = true;
          body.destroy(mapped);
        }
      },
    };

    try {
      req.dispatcher.dispatch(
        {
          origin: upstream.origin,
          path,
          method: method as Dispatcher.HttpMethod,
          headers,
          body: req.body ?? null,
          ...(req.timeouts?.headersMs !== undefined ? { headersTimeout: req.timeouts.headersMs } : {}),
          ...(req.timeouts?.bodyMs !== undefined ? { bodyTimeout: req.timeouts.bodyMs } : {}),
        },
        handler,
      );
    } catch (err) {
      release();
      reject(mapUpstreamError(err, signal));
    }
  });
}
