import type { Location } from './errors.js';
import type { Value } from './value.js';

export type Term =
  | { t: 'scalar'; v: Value; loc: Location }
  | { t: 'var'; name: string; loc: Location }
  | { t: 'ref'; head: Term; path: Term[]; loc: Location }
  | { t: 'array'; items: Term[]; loc: Location }
  | { t: 'object'; entries: [Term, Term][]; loc: Location }
  | { t: 'set'; items: Term[]; loc: Location }
  | { t: 'arraycomp'; head: Term; body: Expr[]; loc: Location }
  | { t: 'setcomp'; head: Term; body: Expr[]; loc: Location }
  | { t: 'objectcomp'; key: Term; value: Term; body: Expr[]; loc: Location }
  | { t: 'call'; fn: Term; args: Term[]; loc: Location }
  | { t: 'template'; parts: (string | Term)[]; loc: Location };

export interface With {
  target: Term;
  value: Term;
  loc: Location;
}

export type ExprBody =
  | { k: 'term'; term: Term }
  | { k: 'unify'; lhs: Term; rhs: Term }
  | { k: 'assign'; lhs: Term; rhs: Term }
  | { k: 'some'; vars: Term[] }
  | { k: 'somein'; key: Term | undefined; value: Term; domain: Term }
  | { k: 'every'; key: Term | undefined; value: Term; domain: Term; body: Expr[] };

export type Expr = ExprBody & { negated: boolean; with: With[]; loc: Location };

export interface ElseClause {
  value: Term | undefined;
  body: Expr[];
  loc: Location;
}

export interface Rule {
  isDefault: boolean;
  /** Head reference relative to the package: first element is the rule name as a string scalar. */
  ref: Term[];
  args: Term[] | undefined;
  /** `contains` element (partial set rules). */
  element: Term | undefined;
  value: Term | undefined;
  body: Expr[];
  elses: ElseClause[];
  loc: Location;
  /** parsed `# METADATA` block directly above the rule */
  annotations?: Record<string, unknown>;
}

export interface Import {
  path: Term;
  alias: string | undefined;
  loc: Location;
}

export interface Module {
  file: string;
  pkg: string[];
  pkgLoc: Location;
  imports: Import[];
  rules: Rule[];
  /** parsed `# METADATA` block directly above the package */
  annotations?: Record<string, unknown>;
}
