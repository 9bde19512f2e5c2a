// Bundles the CLI (and with it every service) into one ESM file; npm dependencies stay external.
// Also prepares an initdb'd PGlite data directory that `caracal up` copies on first start (initdb takes seconds).
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { build } from 'esbuild';

const started = performance.now();
await build({
  entryPoints: ['apps/cli/src/main.ts'],
  outfile: 'apps/cli/dist/caracal.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  plugins: [
    {
      name: 'external-npm',
      setup(b) {
        // Workspace packages (@caracal/*) are bundled from source; everything else comes from node_modules.
        b.onResolve({ filter: /^[^./]/ }, (args) =>
          args.path.startsWith('@caracal/') ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
});
console.log(`built apps/cli/dist/caracal.mjs in ${Math.round(performance.now() - started)} ms`);

const template = 'apps/cli/dist/pglite-template';
const pgliteVersion = JSON.parse(
  readFileSync('node_modules/@electric-sql/pglite/package.json', 'utf8'),
).version;
const stamp = `${template}/CARACAL_PGLITE_VERSION`;
if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== pgliteVersion) {
  const t0 = performance.now();
  const building = `${template}.building-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  const db = await PGlite.create({ dataDir: building });
  await db.close();
  writeFileSync(`${building}/CARACAL_PGLITE_VERSION`, pgliteVersion);
  rmSync(template, { recursive: true, force: true });
  renameSync(building, template);
  console.log(`prepared ${template} (PGlite ${pgliteVersion}) in ${Math.round(performance.now() - t0)} ms`);
}
