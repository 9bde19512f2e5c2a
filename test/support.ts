// Helpers for tests that run Caracal processes for real.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first stdout match of re. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawn a process and collect its output. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const started = Date.now();
        const tick = () => {
          const m = out.match(re);
          if (m) return resolve(m);
          if (proc.exitCode !== null || proc.signalCode !== null) {
            return reject(
              new Error(`process exited (${proc.exitCode ?? proc.signalCode}) before ${re}:\n${out}\n${err}`),
            );
          }
          if (Date.now() - started > timeoutMs)
            return reject(new Error(`timeout waiting for ${re}:\n${out}\n${err}`));
          setTimeout(tick, 20);
        };
        tick();
      });
    },
  };
}

/** Run a TypeScript file with tsx. */
export function runTs(file: string, args: string[] = [], env: Record<string, string> = {}): Child {
  return run(process.execPath, ['--import', 'tsx', file, ...args], env);
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** CARACAL_PORTS_* for every service on free ports, so parallel runs never collide. */
export async function freeServicePorts(): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const s of ['api', 'console', 'sts', 'gateway', 'audit', 'coordinator']) {
    env[`CARACAL_PORTS_${s.toUpperCase()}`] = String(await freePort());
  }
  return env;
}
