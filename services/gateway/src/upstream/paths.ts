import { CaracalError } from '@caracal/core';

// RFC 3986 pchar: unreserved, sub-delims, ':' and '@', or a well-formed percent escape. Anything else
// (spaces, raw non-ASCII, backslash, '?', '#', a lone '%') is refused rather than re-encoded.
const SEGMENT = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*$/;
const QUERY = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/;
const ESCAPE = /%([0-9A-Fa-f]{2})/g;
// Decoding rounds checked: a segment still holding escapes after this many is refused outright.
const MAX_DECODE_ROUNDS = 4;

function traversal(detail: string): CaracalError {
  return new CaracalError('path_traversal_refused', 400, detail);
}

/** One byte per escape (latin1), so invalid UTF-8 cannot throw and every byte stays visible. */
function percentDecode(s: string): string {
  return s.replace(ESCAPE, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/**
 * Refuse a segment that is, or decodes (once or several times, as a chain of upstream layers might) to, a
 * dot segment, or that carries a slash, backslash, NUL or an overlong-UTF-8 lead byte. A dot segment between
 * semicolons (`..;x`, `;..`) counts too: servlet containers and some routers split on `;`.
 */
function checkSegment(raw: string): void {
  if (!SEGMENT.test(raw)) throw traversal('The path holds characters that are not allowed.');
  let s = raw;
  for (let round = 0; ; round++) {
    if (/[/\\\0\u00c0\u00c1]/.test(s)) throw traversal('The path holds an encoded separator.');
    for (const part of s.split(';')) {
      if (part === '.' || part === '..') throw traversal('The path holds a dot segment.');
    }
    if (!s.includes('%')) return;
    if (round === MAX_DECODE_ROUNDS) throw traversal('The path is encoded too many times.');
    const decoded = percentDecode(s);
    if (decoded === s) return;
    s = decoded;
  }
}

/**
 * Join a request path (raw, still percent-encoded, as received) below the upstream base path, so it can
 * never leave it: `..` and `.` segments, their encodings, encoded slashes, backslashes and empty segments
 * (`//`) are refused with `path_traversal_refused` (400), never normalised. A trailing slash is kept.
 */
export function joinUpstreamPath(basePath: string, path: string): string {
  const base = basePath.endsWith('/') ? basePath.slice(0, -1) : basePath;
  if (path === '' || path === '/') return path === '' ? base || '/' : `${base}/`;
  const rel = path.startsWith('/') ? path.slice(1) : path;
  const segments = rel.split('/');
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '') {
      if (i === segments.length - 1) continue; // trailing slash
      throw traversal('The path holds an empty segment (//).');
    }
    checkSegment(seg);
  }
  return `${base}/${rel}`;
}

/** Validate a raw query string (without '?'); returned unchanged, or refused with `query_invalid` (400). */
export function checkQuery(query: string): string {
  if (!QUERY.test(query))
    throw new CaracalError('query_invalid', 400, 'The query holds characters that are not allowed.');
  return query;
}
