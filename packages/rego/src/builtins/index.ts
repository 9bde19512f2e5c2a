/** The one registry of built-in functions, keyed by their Rego name. */
import { awsBuiltins } from './aws.js';
import { coreBuiltins } from './core.js';
import { encodingBuiltins } from './encoding.js';
import { graphqlBuiltins } from './graphql.js';
import { jsonSchemaBuiltins } from './jsonschema.js';
import { jwtBuiltins } from './jwt.js';
import { miscBuiltins } from './misc.js';
import { netBuiltins } from './net.js';
import { regexBuiltins } from './regex.js';
import { stringBuiltins } from './strings.js';
import { templateBuiltins } from './template.js';
import { timeBuiltins } from './time.js';
import type { BuiltinDef } from './types.js';
import { x509Builtins } from './x509.js';

export type { BuiltinContext, BuiltinDef, BuiltinFn } from './types.js';
export { BuiltinError } from './types.js';

/** Every built-in group, in registration order (later entries win on name clashes). */
const BUILTIN_TABLE: readonly BuiltinDef[] = [
  ...coreBuiltins,
  ...stringBuiltins,
  ...regexBuiltins,
  ...encodingBuiltins,
  ...miscBuiltins,
  ...jwtBuiltins,
  ...graphqlBuiltins,
  ...awsBuiltins,
  ...jsonSchemaBuiltins,
  ...x509Builtins,
  ...templateBuiltins,
  ...netBuiltins,
  ...timeBuiltins,
];

/** Build the registry table (name → definition). */
export function defaultBuiltins(): Map<string, BuiltinDef> {
  const m = new Map<string, BuiltinDef>();
  for (const b of BUILTIN_TABLE) m.set(b.name, b);
  return m;
}
