/** Runs once before all test files: fails fast when the real servers the suite needs are not answering. */
import { execFileSync } from 'node:child_process';
import { createConnection } from 'node:net';

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

export default async function setup() {
  const pg = new URL(process.env.CARACAL_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const redis = new URL(process.env.CARACAL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  const missing: string[] = [];
  if (!(await reachable(pg.hostname, Number(pg.port || 5432)))) missing.push(`PostgreSQL at ${pg.host}`);
  if (!(await reachable(redis.hostname, Number(redis.port || 6379)))) missing.push(`Redis at ${redis.host}`);
  // Tests that run the `caracal` command use the bundle: build it from the current source.
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  if (missing.length)
    throw new Error(
      `tests need real servers; not answering: ${missing.join(', ')} (bash .ci/run starts them)`,
    );
}
