/**
 * crypto.x509.* and crypto.parse_private_keys on node:crypto. Certificates are returned as a
 * subset of Go's x509.Certificate JSON (Subject/Issuer names, validity, SANs, serial, IsCA, Raw).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { fromJSON, RObject, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, str } from './types.js';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

function strictB64(name: string, s: string): Buffer {
  const clean = s.replace(/\s+/g, '');
  const bad = clean.search(/[^A-Za-z0-9+/=]/);
  if (bad >= 0 || clean.length % 4 !== 0)
    throw new BuiltinError(
      `${name}: illegal base64 data at input byte ${bad >= 0 ? bad : clean.length - (clean.length % 4)}`,
    );
  return Buffer.from(clean, 'base64');
}

function pemBlocks(text: string, type?: RegExp): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(PEM_BLOCK))
    if (!type || type.test(m[1] as string))
      out.push(Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64'));
  return out;
}

/** Split concatenated DER SEQUENCEs. */
function splitDer(name: string, b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    if (b[i] !== 0x30 || i + 2 > b.length) throw new BuiltinError(`${name}: x509: malformed certificate`);
    let len = b[i + 1] as number;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || i + 2 + n > b.length)
        throw new BuiltinError(`${name}: x509: malformed certificate`);
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + (b[i + 2 + k] as number);
      hdr = 2 + n;
    }
    if (i + hdr + len > b.length) throw new BuiltinError(`${name}: x509: malformed certificate`);
    out.push(b.subarray(i, i + hdr + len));
    i += hdr + len;
  }
  return out;
}

function certDers(name: string, input: string): Buffer[] {
  if (input.includes('-----BEGIN')) return pemBlocks(input, /CERTIFICATE/);
  const raw = strictB64(name, input);
  const text = raw.toString('latin1');
  if (text.includes('-----BEGIN')) return pemBlocks(text, /CERTIFICATE/);
  return splitDer(name, raw);
}

function parseName(s: string): RObject {
  const fields: Record<string, string[]> = {};
  for (const line of s.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const list = fields[k] ?? [];
    list.push(line.slice(i + 1));
    fields[k] = list;
  }
  const list = (k: string) => fields[k] ?? null;
  return fromJSON({
    CommonName: fields.CN?.[0] ?? '',
    Country: list('C'),
    Organization: list('O'),
    OrganizationalUnit: list('OU'),
    Locality: list('L'),
    Province: list('ST'),
    StreetAddress: list('street'),
    PostalCode: list('postalCode'),
    SerialNumber: fields.serialNumber?.[0] ?? '',
  }) as RObject;
}

function sans(c: X509Certificate, kind: string): string[] | null {
  const alt = c.subjectAltName;
  if (!alt) return null;
  const out = alt
    .split(/,\s*/)
    .filter((x) => x.startsWith(`${kind}:`))
    .map((x) => x.slice(kind.length + 1));
  return out.length ? out : null;
}

function certValue(name: string, der: Buffer): { cert: X509Certificate; value: Value } {
  let c: X509Certificate;
  try {
    c = new X509Certificate(der);
  } catch {
    throw new BuiltinError(`${name}: x509: malformed certificate`);
  }
  const o = new RObject();
  o.set('Raw', der.toString('base64'));
  o.set('SerialNumber', BigInt(`0x${c.serialNumber}`).toString());
  o.set('Subject', parseName(c.subject));
  o.set('Issuer', parseName(c.issuer));
  o.set('NotBefore', new Date(c.validFrom).toISOString().replace('.000Z', 'Z'));
  o.set('NotAfter', new Date(c.validTo).toISOString().replace('.000Z', 'Z'));
  o.set('DNSNames', fromJSON(sans(c, 'DNS')));
  o.set('EmailAddresses', fromJSON(sans(c, 'email')));
  o.set('IPAddresses', fromJSON(sans(c, 'IP Address')));
  o.set('URIStrings', fromJSON(sans(c, 'URI')));
  o.set('IsCA', c.ca);
  return { cert: c, value: o };
}

function privateKeys(text: string): Value[] {
  const out: Value[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (!/PRIVATE KEY/.test(m[1] as string)) continue;
    try {
      out.push(fromJSON(createPrivateKey(m[0]).export({ format: 'jwk' })));
    } catch {
      // skip blocks node cannot read
    }
  }
  return out;
}

export const x509Builtins: BuiltinDef[] = [
  {
    name: 'crypto.x509.parse_certificates',
    arity: 1,
    fn: (a) => {
      const name = 'crypto.x509.parse_certificates';
      const ders = certDers(name, str(name, a, 0));
      if (!ders.length) throw new BuiltinError(`${name}: x509: malformed certificate`);
      return ders.map((d) => certValue(name, d).value);
    },
  },
  {
    name: 'crypto.x509.parse_and_verify_certificates',
    arity: 1,
    fn: (a) => {
      const name = 'crypto.x509.parse_and_verify_certificates';
      const invalid: Value = [false, []];
      let parsed: { cert: X509Certificate; value: Value }[];
      try {
        parsed = certDers(name, str(name, a, 0)).map((d) => certValue(name, d));
      } catch {
        return invalid;
      }
      if (parsed.length < 2) return invalid;
      // input order is root first, leaf last (as OPA expects); the result lists leaf first
      for (let i = 0; i < parsed.length; i++) {
        const c = (parsed[i] as { cert: X509Certificate }).cert;
        const issuer = (parsed[Math.max(i - 1, 0)] as { cert: X509Certificate }).cert;
        if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) return invalid;
        if (i < parsed.length - 1 && !c.ca) return invalid;
      }
      return [true, parsed.map((p) => p.value).reverse()];
    },
  },
  {
    name: 'crypto.x509.parse_keypair',
    arity: 2,
    fn: (a) => {
      const name = 'crypto.x509.parse_keypair';
      const certIn = str(name, a, 0);
      const keyIn = str(name, a, 1);
      const certText = certIn.includes('-----BEGIN') ? certIn : strictB64(name, certIn).toString('utf8');
      const keyText = keyIn.includes('-----BEGIN') ? keyIn : strictB64(name, keyIn).toString('utf8');
      const ders = pemBlocks(certText, /CERTIFICATE/);
      if (!ders.length)
        throw new BuiltinError(`${name}: tls: failed to find any PEM data in certificate input`);
      const keys = privateKeys(keyText);
      if (!keys.length) throw new BuiltinError(`${name}: tls: failed to find any PEM data in key input`);
      const o = new RObject();
      o.set(
        'Certificate',
        ders.map((d) => d.toString('base64')),
      );
      o.set('PrivateKey', keys[0] as Value);
      o.set('Leaf', null);
      return o;
    },
  },
  {
    name: 'crypto.x509.parse_rsa_private_key',
    arity: 1,
    fn: (a) => {
      const name = 'crypto.x509.parse_rsa_private_key';
      const s = str(name, a, 0);
      const text = s.includes('-----BEGIN') ? s : strictB64(name, s).toString('utf8');
      const keys = privateKeys(text);
      if (!keys.length) throw new BuiltinError(`${name}: failed to parse PEM block containing the key`);
      return keys[0] as Value;
    },
  },
  {
    name: 'crypto.parse_private_keys',
    arity: 1,
    fn: (a) => {
      const s = str('crypto.parse_private_keys', a, 0);
      if (s === '') return null;
      let text = s;
      if (!s.includes('-----BEGIN')) {
        try {
          text = strictB64('crypto.parse_private_keys', s).toString('utf8');
        } catch {
          return [];
        }
      }
      return privateKeys(text);
    },
  },
];
