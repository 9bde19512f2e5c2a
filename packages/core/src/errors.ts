/** One error type for the whole product; mapped once to RFC 9457 problem+json. */
export class CaracalError extends Error {
  readonly code: string;
  readonly status: number;
  readonly detail: string;
  readonly extras: Record<string, unknown>;

  constructor(
    code: string,
    status: number,
    detail: string,
    extras: Record<string, unknown> = {},
    cause?: unknown,
  ) {
    super(detail, cause === undefined ? undefined : { cause });
    this.name = 'CaracalError';
    this.code = code;
    this.status = status;
    this.detail = detail;
    this.extras = extras;
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Problem document for any thrown value; unknown errors never leak their message. */
export function toProblem(err: unknown, instance?: string): Problem {
  const e =
    err instanceof CaracalError
      ? err
      : new CaracalError('internal_error', 500, 'An internal error occurred.');
  const problem: Problem = {
    ...e.extras,
    type: `https://caracal.dev/problems/${e.code}`,
    title: TITLES[e.status] ?? 'Error',
    status: e.status,
    code: e.code,
    detail: e.detail,
  };
  if (instance) problem.instance = instance;
  return problem;
}

export const errors = {
  validation: (detail: string, issues: unknown[] = []) =>
    new CaracalError('validation_failed', 400, detail, issues.length ? { errors: issues } : {}),
  notFound: (what: string) => new CaracalError('not_found', 404, `${what} not found.`),
  conflict: (code: string, detail: string) => new CaracalError(code, 409, detail),
  unauthorized: (detail = 'Authentication required.') => new CaracalError('unauthorized', 401, detail),
  forbidden: (code: string, detail: string) => new CaracalError(code, 403, detail),
  unavailable: (code: string, detail: string, cause?: unknown) =>
    new CaracalError(code, 503, detail, {}, cause),
};
