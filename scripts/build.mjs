// Bundles the CLI (and with it every service) into one ESM file; npm dependencies stay external.
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
