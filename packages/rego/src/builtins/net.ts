import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { RSet, type Value } from '../value.js';
import { type BuiltinDef, BuiltinError, str, typeErr } from './types.js';

interface Cidr {
  v6: boolean;
  addr: bigint;
  bits: number;
}

function parseIP(s: string): { v6: boolean; addr: bigint } | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) {
    const parts = s.split('.').map(Number);
    if (parts.some((p) => p > 255)) return undefined;
    return { v6: false, addr: parts.reduce((a, p) => (a << 8n) | BigInt(p), 0n) };
  }
  if (!s.includes(':')) return undefined;
  let str6 = s;
  let tail: bigint[] = [];
  const v4 = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(str6);
  if (v4) {
    const ip = parseIP(v4[1] as string);
    if (!ip) return undefined;
    tail = [ip.addr >> 16n, ip.addr & 0xffffn];
    str6 = str6.slice(0, -(v4[1] as string).length) + '0:0';
  }
  const halves = str6.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string) => (h === '' ? [] : h.split(':'));
  const a = parse(halves[0] as string);
  const b = halves.length === 2 ? parse(halves[1] as string) : [];
  if ([...a, ...b].some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const fill = 8 - a.length - b.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined;
  const groups = [...a, ...Array(halves.length === 2 ? fill : 0).fill('0'), ...b].map((g) =>
    BigInt(`0x${g}`),
  );
  if (tail.length) {
    groups[6] = tail[0] as bigint;
    groups[7] = tail[1] as bigint;
  }
  return { v6: true, addr: groups.reduce((x, g) => (x << 16n) | g, 0n) };
}

function parseCidr(name: string, s: string): Cidr {
  const i = s.indexOf('/');
  if (i < 0) throw new BuiltinError(`${name}: invalid CIDR address: ${s}`);
  const ip = parseIP(s.slice(0, i));
  const bitsS = s.slice(i + 1);
  if (!ip || !/^\d+$/.test(bitsS)) throw new BuiltinError(`${name}: invalid CIDR address: ${s}`);
  const bits = Number(bitsS);
  if (bits > (ip.v6 ? 128 : 32)) throw new BuiltinError(`${name}: invalid CIDR address: ${s}`);
  const width = ip.v6 ? 128 : 32;
  const mask = ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
  return { v6: ip.v6, addr: ip.addr & mask, bits };
}

function parseCidrOrIP(name: string, s: string): Cidr {
  if (s.includes('/')) return parseCidr(name, s);
  const ip = parseIP(s);
  if (!ip) throw new BuiltinError(`${name}: invalid CIDR address: ${s}`);
  return { v6: ip.v6, addr: ip.addr, bits: ip.v6 ? 128 : 32 };
}

function range(c: Cidr): [bigint, bigint] {
  const width = c.v6 ? 128 : 32;
  const size = 1n << BigInt(width - c.bits);
  return [c.addr, c.addr + size - 1n];
}

function contains(a: Cidr, b: Cidr): boolean {
  if (a.v6 !== b.v6) return false;
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return b0 >= a0 && b1 <= a1;
}

function fmtIP(v6: boolean, addr: bigint): string {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 255n)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // compress longest zero run
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function cidrsOf(name: string, v: Value, pos: number): [Value, string][] {
  if (typeof v === 'string') return [[v, v]];
  const items: [Value, Value][] = [];
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) items.push([i, v[i] as Value]);
  else if (v instanceof RSet) for (const x of v.sorted()) items.push([x, x]);
  else if (v !== null && typeof v === 'object' && 'sortedEntries' in v)
    for (const [k, x] of v.sortedEntries()) items.push([k, x]);
  else throw typeErr(name, pos, 'one of {string, array, set, object}', v);
  return items.map(([k, x]) => {
    const s = Array.isArray(x) ? x[0] : x;
    if (typeof s !== 'string') throw typeErr(name, pos, 'string', s as Value);
    return [k, s];
  });
}

function merge(cidrs: Cidr[]): Cidr[] {
  // convert to ranges, merge, then split into aligned blocks
  const out: Cidr[] = [];
  for (const v6 of [false, true]) {
    const width = v6 ? 128 : 32;
    const rs = cidrs
      .filter((c) => c.v6 === v6)
      .map(range)
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const merged: [bigint, bigint][] = [];
    for (const r of rs) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1] + 1n) {
        if (r[1] > last[1]) last[1] = r[1];
      } else merged.push([r[0], r[1]]);
    }
    for (const [lo0, hi] of merged) {
      let lo = lo0;
      while (lo <= hi) {
        let bits = width;
        while (bits > 0) {
          const size = 1n << BigInt(width - bits + 1);
          if (lo % size !== 0n || lo + size - 1n > hi) break;
          bits--;
        }
        out.push({ v6, addr: lo, bits });
        lo += 1n << BigInt(width - bits);
      }
    }
  }
  return out;
}

function hash(alg: string): BuiltinDef {
  const name = `crypto.${alg}`;
  return {
    name,
    arity: 1,
    fn: (a) =>
      createHash(alg)
        .update(str(name, a, 0), 'utf8')
        .digest('hex'),
  };
}
function hmac(alg: string): BuiltinDef {
  const name = `crypto.hmac.${alg}`;
  return {
    name,
    arity: 2,
    fn: (a) =>
      createHmac(alg, str(name, a, 1))
        .update(str(name, a, 0))
        .digest('hex'),
  };
}

export const netBuiltins: BuiltinDef[] = [
  {
    name: 'net.cidr_contains',
    arity: 2,
    fn: (a) =>
      contains(
        parseCidr('net.cidr_contains', str('net.cidr_contains', a, 0)),
        parseCidrOrIP('net.cidr_contains', str('net.cidr_contains', a, 1)),
      ),
  },
  {
    name: 'net.cidr_intersects',
    arity: 2,
    fn: (a) => {
      const x = parseCidr('net.cidr_intersects', str('net.cidr_intersects', a, 0));
      const y = parseCidr('net.cidr_intersects', str('net.cidr_intersects', a, 1));
      return contains(x, y) || contains(y, x);
    },
  },
  {
    name: 'net.cidr_is_valid',
    arity: 1,
    fn: (a) => {
      if (typeof a[0] !== 'string') return false;
      try {
        parseCidr('net.cidr_is_valid', a[0]);
        return true;
      } catch {
        return false;
      }
    },
  },
  {
    name: 'net.cidr_expand',
    arity: 1,
    fn: (a, ctx) => {
      const c = parseCidr('net.cidr_expand', str('net.cidr_expand', a, 0));
      const [lo, hi] = range(c);
      const n = hi - lo + 1n;
      if (n > 1_000_000n) throw new BuiltinError('net.cidr_expand: CIDR too large');
      ctx.charge(Number(n));
      const out = new RSet();
      for (let x = lo; x <= hi; x++) out.add(fmtIP(c.v6, x));
      return out;
    },
  },
  {
    name: 'net.cidr_merge',
    arity: 1,
    fn: (a) => {
      const v = a[0] as Value;
      const items = Array.isArray(v) ? v : v instanceof RSet ? v.sorted() : undefined;
      if (!items) throw typeErr('net.cidr_merge', 1, 'one of {set, array}', v);
      const cs = items.map((x) => {
        if (typeof x !== 'string') throw typeErr('net.cidr_merge', 1, 'set of strings', x);
        if (x.includes('/')) return parseCidr('net.cidr_merge', x);
        const ip = parseIP(x);
        if (!ip) throw new BuiltinError(`net.cidr_merge: invalid CIDR address: ${x}`);
        if (ip.v6) throw new BuiltinError('net.cidr_merge: IPv6 invalid: needs prefix length');
        // Go's default (classful) mask for a bare IPv4 address
        const first = Number(ip.addr >> 24n);
        const bits = first < 128 ? 8 : first < 192 ? 16 : first < 224 ? 24 : 32;
        return parseCidr('net.cidr_merge', `${x}/${bits}`);
      });
      return RSet.of(merge(cs).map((c) => `${fmtIP(c.v6, c.addr)}/${c.bits}`));
    },
  },
  {
    name: 'net.cidr_contains_matches',
    arity: 2,
    fn: (a) => {
      const xs = cidrsOf('net.cidr_contains_matches', a[0] as Value, 1);
      const ys = cidrsOf('net.cidr_contains_matches', a[1] as Value, 2);
      const out = new RSet();
      for (const [kx, sx] of xs) {
        const cx = parseCidrOrIP('net.cidr_contains_matches', sx);
        for (const [ky, sy] of ys)
          if (contains(cx, parseCidrOrIP('net.cidr_contains_matches', sy))) out.add([kx, ky]);
      }
      return out;
    },
  },
  hash('md5'),
  hash('sha1'),
  hash('sha256'),
  hmac('md5'),
  hmac('sha1'),
  hmac('sha256'),
  hmac('sha512'),
  {
    name: 'crypto.hmac.equal',
    arity: 2,
    fn: (a) => {
      const x = Buffer.from(str('crypto.hmac.equal', a, 0));
      const y = Buffer.from(str('crypto.hmac.equal', a, 1));
      return x.length === y.length && timingSafeEqual(x, y);
    },
  },
];
