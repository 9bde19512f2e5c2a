/** Source location of a term, expression or error. */
export interface Location {
  file: string;
  line: number;
  col: number;
}

/** One Rego error, with OPA's error code (rego_parse_error, eval_conflict_error, ...). */
export class RegoError extends Error {
  readonly code: string;
  readonly location: Location | undefined;
  constructor(code: string, message: string, location?: Location) {
    super(message);
    this.code = code;
    this.location = location;
  }
  /** OPA-style one line: `file:line: code: message`. */
  format(): string {
    const loc = this.location ? `${this.location.file}:${this.location.line}:${this.location.col}: ` : '';
    return `${loc}${this.code}: ${this.message}`;
  }
}

/** Compile-time failure carrying every error found. */
export class RegoCompileErrors extends Error {
  readonly errors: RegoError[];
  constructor(errors: RegoError[]) {
    super(errors.map((e) => e.format()).join('\n'));
    this.errors = errors;
  }
}
