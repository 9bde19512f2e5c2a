/** io.jwt.* built-ins, synchronous, on node:crypto (evaluation is synchronous, jose's API is async). */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
import { compare, isNumber, RObject, stringify, type Value } from '../value.js';
import { parseJSON } from './encoding.js';
import { type BuiltinDef, BuiltinError, obj, str, typeErr } from './types.js';

const B64URL = /^[A-Za-z0-9_-]*$/;

function b64(part: string, what: string): Buffer {
  const clean = part.replace(/=+$/, '');
  if (!B64URL.test(clean) || clean.length % 4 === 1) {
    const bad = clean.search(/[^A-Za-z0-9_-]/);
    throw new BuiltinError(
      `JWT ${what} had invalid encoding: illegal base64 data at input byte ${bad < 0 ? clean.length : bad}`,
    );
  }
  return Buffer.from(clean, 'base64url');
}

interface Decoded {
  header: Value;
  payload: Value;
  sig: Buffer;
  signingInput: string;
}

function decode(name: string, token: string): Decoded {
  if (!token.includes('.')) throw new BuiltinError(`${name}: encoded JWT had no period separators`);
  const parts = token.split('.');
  if (parts.length === 5) throw new BuiltinError(`${name}: JWT is a JWE object, which is not supported`);
  if (parts.length !== 3)
    throw new BuiltinError(`${name}: encoded JWT must have 3 sections, found ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  let header: Value;
  try {
    header = parseJSON(b64(h, 'header').toString('utf8'));
  } catch (e) {
    if (e instanceof BuiltinError) throw new BuiltinError(`${name}: ${e.message}`);
    throw new BuiltinError(`${name}: JWT header had invalid encoding: ${(e as Error).message}`);
  }
  if (!(header instanceof RObject)) throw new BuiltinError(`${name}: JWT header is not a JSON object`);
  if (header.has('enc')) throw new BuiltinError(`${name}: JWT is a JWE object, which is not supported`);
  const payloadBytes = b64(p, 'payload').toString('utf8');
  let payload: Value;
  try {
    payload = parseJSON(payloadBytes);
  } catch {
    throw new BuiltinError(`${name}: type is JWT but payload is not JSON`);
  }
  const sig = b64(s, 'signature');
  return { header, payload, sig, signingInput: `${h}.${p}` };
}

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

function publicKeys(name: string, material: string): KeyObject[] {
  const t = material.trim();
  if (t.startsWith('{')) {
    let jwk: unknown;
    try {
      jwk = JSON.parse(t);
    } catch {
      throw new BuiltinError(`${name}: failed to parse a JWK key (set)`);
    }
    const keys = (jwk as { keys?: unknown[] }).keys ?? [jwk];
    try {
      return keys.map((k) => createPublicKey({ key: k as import('node:crypto').JsonWebKey, format: 'jwk' }));
    } catch {
      throw new BuiltinError(`${name}: failed to parse a JWK key (set)`);
    }
  }
  if (t.startsWith('-----BEGIN')) {
    const blocks = t.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----/g) ?? [];
    const rest = t.replace(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----/g, '').trim();
    if (rest) throw new BuiltinError(`${name}: extra data after a PEM certificate block`);
    try {
      return blocks.map((b) => createPublicKey(b));
    } catch {
      if (t.includes('CERTIFICATE')) throw new BuiltinError(`${name}: failed to parse a PEM certificate`);
      throw new BuiltinError(`${name}: failed to extract a Key from the PEM certificate`);
    }
  }
  throw new BuiltinError(`${name}: failed to extract a Key from the PEM certificate`);
}

function verifySig(alg: string, input: string, sig: Buffer, key: KeyObject | string): boolean {
  const fam = alg.slice(0, 2);
  const bits = alg.slice(2);
  const data = Buffer.from(input);
  try {
    if (fam === 'HS') {
      const mac = createHmac(HASH[bits] ?? 'sha256', key as string)
        .update(data)
        .digest();
      return mac.length === sig.length && timingSafeEqual(mac, sig);
    }
    const k = key as KeyObject;
    if (alg === 'EdDSA') return verify(null, data, k, sig);
    if (fam === 'RS') return verify(HASH[bits] ?? 'sha256', data, k, sig);
    if (fam === 'PS')
      return verify(HASH[bits] ?? 'sha256', data, { key: k, padding: 6, saltLength: Number(bits) / 8 }, sig);
    if (fam === 'ES') return verify(HASH[bits] ?? 'sha256', data, { key: k, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
  return false;
}

function verifier(alg: string): BuiltinDef {
  const name = `io.jwt.verify_${alg.toLowerCase()}`;
  return {
    name,
    arity: 2,
    fn: (a) => {
      const token = str(name, a, 0);
      const keyMat = str(name, a, 1);
      const d = decode(name, token);
      if (alg.startsWith('HS')) return verifySig(alg, d.signingInput, d.sig, keyMat);
      const keys = publicKeys(name, keyMat);
      return keys.some((k) => verifySig(alg, d.signingInput, d.sig, k));
    },
  };
}

function decodeVerify(args: Value[], nowNs: bigint): Value {
  const name = 'io.jwt.decode_verify';
  const token = str(name, args, 0);
  const c = obj(name, args, 1);
  const invalid: Value = [false, new RObject(), new RObject()];
  const d = decode(name, token);
  const header = d.header as RObject;
  const alg = header.get('alg');
  if (typeof alg !== 'string') return invalid;
  const wantAlg = c.get('alg');
  if (wantAlg !== undefined && wantAlg !== alg) return invalid;
  const cert = c.get('cert');
  const secret = c.get('secret');
  let ok = false;
  if (typeof secret === 'string' && alg.startsWith('HS')) ok = verifySig(alg, d.signingInput, d.sig, secret);
  else if (typeof cert === 'string' && !alg.startsWith('HS'))
    ok = publicKeys(name, cert).some((k) => verifySig(alg, d.signingInput, d.sig, k));
  if (!ok) return invalid;
  const p = d.payload;
  if (!(p instanceof RObject)) return invalid;
  const t = c.get('time');
  const now = isNumber(t ?? null) ? Number(t) : Number(nowNs);
  const exp = p.get('exp');
  if (isNumber(exp ?? null) && now >= Number(exp) * 1e9) return invalid;
  const nbf = p.get('nbf');
  if (isNumber(nbf ?? null) && now < Number(nbf) * 1e9) return invalid;
  const iss = c.get('iss');
  if (iss !== undefined && p.get('iss') !== iss) return invalid;
  const aud = c.get('aud');
  const pa = p.get('aud');
  if (aud !== undefined) {
    if (pa === undefined) return invalid;
    const list = Array.isArray(pa) ? pa : [pa];
    if (!list.some((x) => compare(x, aud) === 0)) return invalid;
  } else if (pa !== undefined) return invalid;
  return [true, header, p];
}

function signWith(name: string, alg: string, input: string, jwk: Record<string, unknown>): string {
  const fam = alg.slice(0, 2);
  const bits = alg.slice(2);
  const data = Buffer.from(input);
  if (fam === 'HS') {
    const k = Buffer.from(String(jwk.k ?? ''), 'base64url');
    return createHmac(HASH[bits] ?? 'sha256', k)
      .update(data)
      .digest('base64url');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch {
    throw new BuiltinError(`${name}: failed to parse a JWK key`);
  }
  if (alg === 'EdDSA') return sign(null, data, key).toString('base64url');
  if (fam === 'RS') return sign(HASH[bits] ?? 'sha256', data, key).toString('base64url');
  if (fam === 'PS')
    return sign(HASH[bits] ?? 'sha256', data, { key, padding: 6, saltLength: Number(bits) / 8 }).toString(
      'base64url',
    );
  if (fam === 'ES')
    return sign(HASH[bits] ?? 'sha256', data, { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  throw new BuiltinError(`${name}: unknown JWS algorithm: ${alg}`);
}

function algOf(name: string, headerText: string): string {
  let h: unknown;
  try {
    h = JSON.parse(headerText);
  } catch {
    throw new BuiltinError(
      `${name}: missing or invalid 'alg' header: cannot parse JSON${headerText === '' ? ': cannot parse empty string' : ''}`,
    );
  }
  const alg = (h as { alg?: unknown })?.alg;
  if (typeof alg !== 'string')
    throw new BuiltinError(`${name}: missing or invalid 'alg' header: jwsbb: header "alg" not found`);
  if (!/^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/.test(alg))
    throw new BuiltinError(`${name}: unknown JWS algorithm: ${alg}`);
  return alg;
}

export const jwtBuiltins: BuiltinDef[] = [
  {
    name: 'io.jwt.decode',
    arity: 1,
    fn: (a) => {
      let d = decode('io.jwt.decode', str('io.jwt.decode', a, 0));
      // nested JWTs (cty: JWT): the payload is itself a token
      for (
        let depth = 0;
        depth < 8 &&
        d.header instanceof RObject &&
        d.header.get('cty') === 'JWT' &&
        typeof d.payload === 'string';
        depth++
      )
        d = decode('io.jwt.decode', d.payload);
      return [d.header, d.payload, d.sig.toString('hex')];
    },
  },
  { name: 'io.jwt.decode_verify', arity: 2, fn: (a, ctx) => decodeVerify(a, ctx.nowNs) },
  ...[
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'HS256',
    'HS384',
    'HS512',
    'EdDSA',
  ].map(verifier),
  {
    name: 'io.jwt.encode_sign_raw',
    arity: 3,
    fn: (a) => {
      const name = 'io.jwt.encode_sign_raw';
      const h = str(name, a, 0);
      const p = str(name, a, 1);
      const k = str(name, a, 2);
      const alg = algOf(name, h);
      if (/"typ"\s*:\s*"JWT"/.test(h)) {
        try {
          JSON.parse(p);
        } catch {
          throw new BuiltinError(`${name}: type is JWT but payload is not JSON`);
        }
      }
      let jwk: Record<string, unknown>;
      try {
        jwk = JSON.parse(k);
      } catch {
        throw new BuiltinError(`${name}: failed to parse a JWK key`);
      }
      const input = `${Buffer.from(h).toString('base64url')}.${Buffer.from(p).toString('base64url')}`;
      return `${input}.${signWith(name, alg, input, jwk)}`;
    },
  },
  {
    name: 'io.jwt.encode_sign',
    arity: 3,
    fn: (a) => {
      const name = 'io.jwt.encode_sign';
      const h = a[0] as Value;
      const p = a[1] as Value;
      const k = a[2] as Value;
      if (!(h instanceof RObject)) throw typeErr(name, 1, 'object', h);
      if (!(p instanceof RObject)) throw typeErr(name, 2, 'object', p);
      if (!(k instanceof RObject)) throw typeErr(name, 3, 'object', k);
      const ht = stringify(h);
      const alg = algOf(name, ht);
      const input = `${Buffer.from(ht).toString('base64url')}.${Buffer.from(stringify(p)).toString('base64url')}`;
      return `${input}.${signWith(name, alg, input, JSON.parse(stringify(k)))}`;
    },
  },
];
