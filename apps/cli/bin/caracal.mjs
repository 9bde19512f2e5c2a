#!/usr/bin/env node
// Entry point of the `caracal` command; runs the bundle made by `npm run build`.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/caracal.mjs', import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write('caracal: not built yet; run `npm run build` in the repository first.\n');
  process.exit(2);
}
await import(bundle.href);
