import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { Socket } from 'node:net';
import { CaracalError } from '@caracal/core';
import { Agent, buildConnector } from 'undici';
import { type AddressPolicy, checkAddress } from './address-policy.js';

export interface UpstreamDispatcherOptions extends AddressPolicy {
  /** DNS lookup plus TCP (and TLS) handshake, all addresses tried; default 5 s. */
  connectTimeoutMs?: number;
  /** Default time to the response headers; a request may lower or raise it; default 30 s. */
  headersTimeoutMs?: number;
  /** Default longest silence between body chunks (SSE needs keep-alives within it); default 60 s. */
  bodyTimeoutMs?: number;
  /** Idle keep-alive sockets closed after this; default 4 s (below common upstream idle timeouts). */
  keepAliveTimeoutMs?: number;
  /** Sockets per upstream origin; default unlimited. */
  connections?: number;
  /** Trusted CA certificates (PEM) for TLS upstreams; when set they replace Node's bundled roots (private PKI). */
  ca?: string | Buffer | (string | Buffer)[];
  /** Resolver, replaceable in tests; default `dns.lookup`. */
  lookup?: (hostname: string) => Promise<LookupAddress[]>;
}

type ConnectCallback = (err: Error | null, socket: Socket | null) => void;

function refused(hostname: string, address: string, category: string): CaracalError {
  return new CaracalError(
    'upstream_address_refused',
    403,
    `The upstream host resolves to an address the Gateway may not connect to (${category}).`,
    { host: hostname, address, category },
  );
}

const systemLookup = (hostname: string): Promise<LookupAddress[]> =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) =>
      err ? reject(err) : resolve(addresses),
    ),
  );

/**
 * An undici Agent that resolves upstream hosts itself and checks EVERY resolved address against the policy
 * before connecting to one of them by IP: the address checked is the address connected to, so DNS rebinding
 * has no window. The connected socket's peer is checked once more. Redirects are never followed (no
 * redirect interceptor is composed).
 */
export function createUpstreamDispatcher(policy: UpstreamDispatcherOptions = {}): Agent {
  const connectTimeoutMs = policy.connectTimeoutMs ?? 5_000;
  const lookup = policy.lookup ?? systemLookup;
  const base = buildConnector({ timeout: connectTimeoutMs, ...(policy.ca ? { ca: policy.ca } : {}) });
  const addressPolicy: AddressPolicy = { allowPrivate: policy.allowPrivate === true };

  const connect = (opts: buildConnector.Options, callback: ConnectCallback): void => {
    const hostname = opts.hostname;
    const deadline = Date.now() + connectTimeoutMs;
    let done = false;
    const finish = (err: Error | null, socket: Socket | null) => {
      if (done) {
        socket?.destroy();
        return;
      }
      done = true;
      clearTimeout(timer);
      callback(err, socket);
    };
    const timer = setTimeout(() => {
      const err = new Error(`Connect timeout after ${connectTimeoutMs} ms (${hostname})`);
      (err as Error & { code: string }).code = 'UND_ERR_CONNECT_TIMEOUT';
      finish(err, null);
    }, connectTimeoutMs);

    lookup(hostname).then(
      (addresses) => {
        if (done) return;
        if (addresses.length === 0) return finish(new Error(`No address for ${hostname}`), null);
        for (const a of addresses) {
          const d = checkAddress(a.address, addressPolicy);
          if (!d.allowed) return finish(refused(hostname, a.address, d.category), null);
        }
        // Try each checked address in turn; SNI and certificate checks keep the original host name.
        const servername = opts.servername || (checkAddress(hostname).version ? undefined : hostname);
        const attempt = (i: number, lastErr: Error | null): void => {
          if (done) return;
          const a = addresses[i];
          if (!a || Date.now() >= deadline) {
            finish(lastErr ?? new Error('connect failed'), null);
            return;
          }
          base({ ...opts, hostname: a.address, servername }, (err, socket) => {
            if (err || !socket) {
              attempt(i + 1, err ?? lastErr);
              return;
            }
            const peer = socket.remoteAddress;
            const d = peer ? checkAddress(peer, addressPolicy) : undefined;
            if (!d?.allowed) {
              socket.destroy();
              return finish(refused(hostname, peer ?? 'unknown', d?.category ?? 'invalid'), null);
            }
            finish(null, socket as Socket);
          });
        };
        attempt(0, null);
      },
      (err: Error) => finish(err, null),
    );
  };

  return new Agent({
    connect: connect as unknown as buildConnector.connector,
    headersTimeout: policy.headersTimeoutMs ?? 30_000,
    bodyTimeout: policy.bodyTimeoutMs ?? 60_000,
    keepAliveTimeout: policy.keepAliveTimeoutMs ?? 4_000,
    ...(policy.connections ? { connections: policy.connections } : {}),
  });
}
