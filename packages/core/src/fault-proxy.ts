import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type FaultMode = 'pass' | 'block' | 'reset' | 'delay';

/** A TCP proxy in front of a dependency that tests and drills switch between pass, block, reset and delay. */
export interface FaultProxy {
  readonly port: number;
  readonly url: (scheme: string, path?: string) => string;
  mode(): FaultMode;
  /** pass: forward; block: accept and hold silently (a dead network); reset: drop every connection; delay: forward late. */
  set(mode: FaultMode, delayMs?: number): void;
  close(): Promise<void>;
}

export async function createFaultProxy(
  target: { host: string; port: number },
  listenPort = 0,
): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  let delayMs = 0;
  const live = new Set<Socket>();

  const server: Server = createServer((client) => {
    live.add(client);
    client.on('close', () => live.delete(client));
    client.on('error', () => client.destroy());
    if (mode === 'reset') return client.resetAndDestroy();
    if (mode === 'block') return client.pause();
    const upstream = createConnection(target);
    live.add(upstream);
    upstream.on('close', () => {
      live.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        if (mode === 'block') return;
        if (mode === 'delay' && delayMs > 0) setTimeout(() => to.write(chunk), delayMs);
        else to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    port,
    url: (scheme, path = '') => `${scheme}://127.0.0.1:${port}${path}`,
    mode: () => mode,
    set(next, ms = 0) {
      mode = next;
      delayMs = ms;
      // reset breaks open connections too; block leaves them open and silent, as a dead network does.
      if (next === 'reset') for (const s of live) s.destroy();
    },
    close() {
      for (const s of live) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
