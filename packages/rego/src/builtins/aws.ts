/** providers.aws.sign_req: AWS Signature Version 4 over a request object, with node:crypto. */
import { createHash, createHmac } from 'node:crypto';
import { isNumber, RObject, stringify, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, obj, typeErr } from './types.js';

const NAME = 'providers.aws.sign_req';

function sha256hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function hmac(key: Buffer | string, s: string): Buffer {
  return createHmac('sha256', key).update(s, 'utf8').digest();
}

/** RFC 3986 encoding as SigV4 wants it (unreserved characters kept). */
function uriEncode(s: string, keepSlash: boolean): string {
  let out = '';
  for (const ch of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(ch);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${ch.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function required(o: RObject, keys: string[], pos: number, what: string): Record<string, string> {
  const missing = keys.filter((k) => o.get(k) === undefined);
  const list = `{${keys.map((k) => JSON.stringify(k)).join(', ')}}`;
  if (missing.length)
    throw new BuiltinError(
      `${NAME}: operand ${pos} missing required ${what} parameters(s): ${list}`,
      'eval_type_error',
    );
  const out: Record<string, string> = {};
  for (const k of keys) {
    const v = o.get(k);
    if (typeof v !== 'string')
      throw new BuiltinError(
        `${NAME}: operand ${pos} invalid values for required ${what} parameters(s): ${list}`,
        'eval_type_error',
      );
    out[k] = v;
  }
  return out;
}

function signReq(args: Value[]): Value {
  const req = obj(NAME, args, 0);
  const cfg = obj(NAME, args, 1);
  const t = args[2] as Value;
  if (!isNumber(t)) throw typeErr(NAME, 3, 'number', t);
  const r = required(req, ['method', 'url'], 1, 'request');
  const c = required(
    cfg,
    ['aws_access_key', 'aws_region', 'aws_secret_access_key', 'aws_service'],
    2,
    'AWS config',
  );
  const dps = cfg.get('disable_payload_signing');
  if (dps !== undefined && typeof dps !== 'boolean')
    throw new BuiltinError(
      `${NAME}: operand 2 invalid value for 'disable_payload_signing' in AWS config`,
      'eval_type_error',
    );
  const ms = Number(BigInt(typeof t === 'bigint' ? t : Math.trunc(t)) / 1_000_000n);
  const date = new Date(ms);
  if (Number.isNaN(date.getTime()) || Number(t) < 0)
    throw new BuiltinError(
      `${NAME}: operand 3 could not convert time_ns value into a unix timestamp`,
      'eval_type_error',
    );
  const amzDate = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);

  let body = '';
  const rawBody = req.get('raw_body');
  const objBody = req.get('body');
  if (typeof rawBody === 'string') body = rawBody;
  else if (objBody !== undefined) body = stringify(objBody);

  const url = new URL(r.url as string);
  const headers = new Map<string, string>();
  const given = req.get('headers');
  if (given instanceof RObject)
    for (const [k, v] of given.sortedEntries())
      headers.set(String(k), typeof v === 'string' ? v : stringify(v));
  const payloadHash = dps === true ? 'UNSIGNED-PAYLOAD' : sha256hex(body);
  headers.set('host', url.host);
  // an x-amz-content-sha256 header given by the caller is what gets signed; the output carries the hash
  const givenSha = headers.get('x-amz-content-sha256');
  headers.set('x-amz-content-sha256', givenSha ?? payloadHash);
  headers.set('x-amz-date', amzDate);
  const token = cfg.get('aws_session_token');
  if (typeof token === 'string') headers.set('x-amz-security-token', token);

  const canon = [...headers.entries()]
    .map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/g, ' ')] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const signed = canon.map(([k]) => k).join(';');
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => `${uriEncode(k, false)}=${uriEncode(v, false)}`)
    .sort()
    .join('&');
  // the path as written in the URL: an absent path signs as "" (Go's URL.Path)
  const rawPath = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*([^?#]*)/.exec(r.url as string)?.[1] ?? '';
  const path = uriEncode(decodeURIComponent(rawPath), true);
  const canonicalRequest = [
    r.method as string, // OPA signs the method as given
    path,
    query,
    `${canon.map(([k, v]) => `${k}:${v}`).join('\n')}\n`,
    signed,
    payloadHash,
  ].join('\n');
  const scope = `${day}/${c.aws_region}/${c.aws_service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonicalRequest)].join('\n');
  const kDate = hmac(`AWS4${c.aws_secret_access_key}`, day);
  const kSigning = hmac(hmac(hmac(kDate, c.aws_region as string), c.aws_service as string), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(toSign, 'utf8').digest('hex');

  const out = req.clone();
  const outHeaders = new RObject();
  for (const [k, v] of headers) outHeaders.set(k, v);
  outHeaders.set('x-amz-content-sha256', payloadHash);
  outHeaders.set(
    'Authorization',
    `AWS4-HMAC-SHA256 Credential=${c.aws_access_key}/${scope},SignedHeaders=${signed},Signature=${signature}`,
  );
  out.set('headers', outHeaders);
  return out;
}

export const awsBuiltins: BuiltinDef[] = [{ name: NAME, arity: 3, fn: signReq }];
