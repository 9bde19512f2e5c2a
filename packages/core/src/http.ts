import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyTypeProvider,
  LogController,
  type RawServerDefault,
} from 'fastify';
import type { z } from 'zod';
import { CaracalError, PROBLEM_CONTENT_TYPE, toProblem } from './errors.js';
import type { Logger } from './logger.js';
import type { ServiceMetrics } from './metrics.js';
import type { Readiness } from './readiness.js';

/** Route schemas are zod types; this tells Fastify's types what a validated request holds. */
export interface ZodTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends z.ZodType ? z.output<this['schema']> : unknown;
  serializer: this['schema'] extends z.ZodType ? z.input<this['schema']> : unknown;
}

export type HttpApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  Logger,
  ZodTypeProvider
>;

export interface HttpServerOptions {
  service: string;
  logger: Logger;
  metrics: ServiceMetrics;
  readiness: Readiness;
  bodyLimitBytes?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Fastify-side errors that are the client's fault, with our stable codes. */
const FASTIFY_CODES: Record<string, [string, number]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ['body_too_large', 413],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 415],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['malformed_body', 400],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['malformed_body', 400],
  FST_ERR_CTP_INVALID_JSON_BODY: ['malformed_body', 400],
  FST_ERR_BAD_URL: ['bad_url', 400],
  FST_ERR_ASYNC_CONSTRAINT: ['bad_request', 400],
};

function asCaracalError(err: FastifyError | CaracalError | Error): CaracalError {
  if (err instanceof CaracalError) return err;
  const fe = err as FastifyError;
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new CaracalError(mapped[0], mapped[1], fe.message);
  if (err instanceof SyntaxError && (fe.statusCode ?? 0) === 400) {
    return new CaracalError('malformed_body', 400, `Body is not valid JSON: ${err.message}`);
  }
  const status = fe.statusCode ?? 500;
  if (status >= 400 && status < 500) return new CaracalError('bad_request', status, fe.message);
  return new CaracalError('internal_error', 500, 'An internal error occurred.', {}, err);
}

/** Zod issues as a flat list a client can act on. */
export function zodIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
}

/** The one HTTP server factory: problem+json everywhere, zod schemas, request ids, metrics, health routes. */
export function createHttpServer(opts: HttpServerOptions): HttpApp {
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes ?? 1_048_576,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 72_000,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  }).withTypeProvider<ZodTypeProvider>() as unknown as HttpApp;

  app.setValidatorCompiler(({ schema, httpPart }) => (data: unknown) => {
    const result = (schema as unknown as z.ZodType).safeParse(data);
    if (result.success) return { value: result.data };
    return {
      error: new CaracalError('validation_failed', 400, `Invalid request ${httpPart ?? 'input'}.`, {
        errors: zodIssues(result.error),
      }),
    };
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
      const out: Record<string, string | string[]> = Object.create(null);
      for (const [k, v] of new URLSearchParams(body.toString())) {
        const prev = out[k];
        out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
      done(null, { ...out });
    },
  );

  let closing = false;
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    if (closing) {
      reply.header('connection', 'close');
      throw new CaracalError(
        'shutting_down',
        503,
        'The service is shutting down; retry on another instance.',
      );
    }
  });
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Responses finished while draining close their keep-alive connection, so close() does not wait on idle sockets.
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    opts.metrics.httpDuration.observe(
      {
        service: opts.service,
        route: req.routeOptions.url ?? 'unmatched',
        method: req.method,
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const e = asCaracalError(err);
    if (e.status >= 500) req.log.error({ err, code: e.code }, 'request failed');
    else req.log.debug({ code: e.code, detail: e.detail }, 'request rejected');
    return sendProblem(reply, e, req.url);
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(
      reply,
      new CaracalError('route_not_found', 404, `No route ${req.method} ${req.url.split('?')[0]}.`),
      req.url,
    ),
  );

  app.get('/health', async () => ({ status: 'ok', service: opts.service }));
  app.get('/ready', async (_req, reply) => {
    const report = await opts.readiness.report();
    return reply.code(report.ready ? 200 : 503).send(report);
  });
  app.get('/metrics', async (_req, reply) => {
    reply.type(opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });
  return app;
}

/** Answer with RFC 9457 problem+json. */
export function sendProblem(reply: FastifyReply, err: CaracalError, instance?: string) {
  return reply
    .code(err.status)
    .type(PROBLEM_CONTENT_TYPE)
    .serializer(JSON.stringify)
    .send(toProblem(err, instance?.split('?')[0]));
}
