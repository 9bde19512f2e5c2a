/**
 * SSRF guard: classifies IP addresses and decides which ones the Gateway may connect to.
 *
 * Our own strict parser, not `inet_aton`: shorthand and octal/hex forms (`127.1`, `0177.0.0.1`, `0x7f.1`)
 * and leading zeros are invalid, and invalid is refused, so no textual trick can reach a refused range.
 * IPv6 forms that embed an IPv4 address (mapped, compatible, SIIT-translated, NAT64, 6to4) are judged by
 * the embedded address. Anything outside IPv6 global unicast (2000::/3) that is not named below is refused.
 */

/** Why an address is (or is not) reachable. `public` is the only category allowed by default. */
export type AddressCategory =
  | 'public'
  | 'invalid'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'ula'
  | 'link_local'
  | 'metadata'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'benchmarking'
  | 'documentation';

/** Per-resource address policy. */
export interface AddressPolicy {
  /**
   * Allow loopback, RFC 1918, CGNAT (100.64/10) and IPv6 ULA (fc00::/7) targets: for upstreams on the
   * same host or private network. Cloud metadata addresses stay refused even then; link-local too.
   */
  allowPrivate?: boolean;
}

export interface AddressClassification {
  category: AddressCategory;
  /** 4 or 6 for a valid address, 0 when invalid. */
  version: 0 | 4 | 6;
  /** The IPv4 address embedded in an IPv6 one (mapped, compatible, NAT64, 6to4), which decided the category. */
  embeddedV4?: string;
}

export interface AddressDecision extends AddressClassification {
  allowed: boolean;
}

/** Categories `allowPrivate` opens. Everything else except `public` stays refused. */
const PRIVATE_CATEGORIES: ReadonlySet<AddressCategory> = new Set(['loopback', 'private', 'cgnat', 'ula']);

/** IPv4 ranges, most specific first (the first match decides). */
const V4_RANGES: readonly (readonly [string, number, AddressCategory])[] = [
  // Instance metadata and credential endpoints: AWS/GCP/Azure/OpenStack, ECS task, EKS pod identity,
  // Alibaba, Oracle.
  ['169.254.169.254', 32, 'metadata'],
  ['169.254.170.2', 32, 'metadata'],
  ['169.254.170.23', 32, 'metadata'],
  ['100.100.100.200', 32, 'metadata'],
  ['192.0.0.192', 32, 'metadata'],
  ['255.255.255.255', 32, 'broadcast'],
  ['0.0.0.0', 32, 'unspecified'],
  ['0.0.0.0', 8, 'reserved'], // "this network": Linux connects 0.x to the local host
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'cgnat'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link_local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

/** IPv6 ranges that do not embed IPv4, most specific first. */
const V6_RANGES: readonly (readonly [string, number, AddressCategory])[] = [
  ['fd00:ec2::254', 128, 'metadata'], // AWS IMDS over IPv6
  ['fd00:ec2::23', 128, 'metadata'], // EKS pod identity over IPv6
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b:1::', 48, 'reserved'], // local-use NAT64 (RFC 8215)
  ['100::', 64, 'reserved'], // discard-only
  ['2001:db8::', 32, 'documentation'],
  ['2001:2::', 48, 'benchmarking'],
  ['2001::', 23, 'reserved'], // IETF protocol assignments: Teredo, ORCHID, …
  ['3fff::', 20, 'documentation'],
  ['5f00::', 16, 'reserved'], // SRv6 SIDs
  ['fc00::', 7, 'ula'],
  ['fe80::', 10, 'link_local'],
  ['fec0::', 10, 'reserved'], // site-local (deprecated)
  ['ff00::', 8, 'multicast'],
];

interface V4Range {
  base: number;
  mask: number;
  category: AddressCategory;
}
interface V6Range {
  base: bigint;
  mask: bigint;
  category: AddressCategory;
}

const ALL128 = (1n << 128n) - 1n;

const v4Table: V4Range[] = V4_RANGES.map(([addr, bits, category]) => {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (parseV4(addr)! & mask) >>> 0, mask, category };
});
const v6Table: V6Range[] = V6_RANGES.map(([addr, bits, category]) => {
  const mask = (ALL128 << BigInt(128 - bits)) & ALL128;
  return { base: groupsToBigint(parseV6(addr)!) & mask, mask, category };
});

/** Strict dotted-quad parse; undefined for anything else (shorthand, octal, hex, leading zeros, spaces). */
export function parseV4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

/** Strict IPv6 parse into eight 16-bit groups (compression, upper case and a dotted IPv4 tail accepted). */
export function parseV6(text: string): number[] | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseSide = (side: string, allowV4Tail: boolean): number[] | undefined => {
    if (side === '') return [];
    const out: number[] = [];
    const parts = side.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (allowV4Tail && i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(Number.parseInt(p, 16));
      }
    }
    return out;
  };
  if (halves.length === 1) {
    const groups = parseSide(text, true);
    return groups?.length === 8 ? groups : undefined;
  }
  const head = parseSide(halves[0]!, false);
  const tail = parseSide(halves[1]!, true);
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

function groupsToBigint(groups: number[]): bigint {
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

function v4ToString(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function classifyV4(v: number): AddressCategory {
  for (const r of v4Table) if ((v & r.mask) >>> 0 === r.base) return r.category;
  return 'public';
}

/** The IPv4 address an IPv6 one carries, for the forms that route to IPv4. */
function embeddedV4(g: number[], v: bigint): number | undefined {
  const low32 = (g[6]! << 16) | g[7]!;
  const top80zero = g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0;
  if (top80zero && g[5] === 0xffff) return low32 >>> 0; // ::ffff:a.b.c.d  mapped
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0xffff && g[5] === 0)
    return low32 >>> 0; // ::ffff:0:a.b.c.d  SIIT translated
  if (top80zero && g[5] === 0 && v > 1n) return low32 >>> 0; // ::a.b.c.d  compatible (deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0)
    return low32 >>> 0; // 64:ff9b::a.b.c.d  NAT64
  if (g[0] === 0x2002) return ((g[1]! << 16) | g[2]!) >>> 0; // 2002:aabb:ccdd::  6to4
  return undefined;
}

/** Classify an IP address given as text (brackets and an IPv6 zone id are tolerated). */
export function classifyAddress(text: string): AddressClassification {
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s.includes(':')) {
    const zone = s.indexOf('%');
    if (zone >= 0) s = s.slice(0, zone);
    const g = parseV6(s);
    if (!g) return { category: 'invalid', version: 0 };
    const v = groupsToBigint(g);
    for (const r of v6Table) {
      if ((v & r.mask) === r.base && r.mask === ALL128) return { category: r.category, version: 6 };
    }
    const v4 = embeddedV4(g, v);
    if (v4 !== undefined) return { category: classifyV4(v4), version: 6, embeddedV4: v4ToString(v4) };
    for (const r of v6Table) if ((v & r.mask) === r.base) return { category: r.category, version: 6 };
    // Only 2000::/3 is allocated global unicast; everything else is reserved.
    return { category: g[0]! >>> 13 === 1 ? 'public' : 'reserved', version: 6 };
  }
  const v4 = parseV4(s);
  if (v4 === undefined) return { category: 'invalid', version: 0 };
  return { category: classifyV4(v4), version: 4 };
}

/** Classify and decide: public always; loopback/private/CGNAT/ULA only with `allowPrivate`; never the rest. */
export function checkAddress(text: string, policy: AddressPolicy = {}): AddressDecision {
  const c = classifyAddress(text);
  const allowed =
    c.category === 'public' || (policy.allowPrivate === true && PRIVATE_CATEGORIES.has(c.category));
  return { ...c, allowed };
}

/** True when the Gateway may connect to `text` under `policy`. */
export function isAddressAllowed(text: string, policy: AddressPolicy = {}): boolean {
  return checkAddress(text, policy).allowed;
}
