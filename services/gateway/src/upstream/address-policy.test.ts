import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkAddress, classifyAddress, isAddressAllowed, parseV6 } from './address-policy.js';

// An independent list of the IPv4 ranges that must be refused by default, checked by node:net's BlockList.
const REFUSED_V4: [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
const oracle = new BlockList();
for (const [net, bits] of REFUSED_V4) oracle.addSubnet(net, bits, 'ipv4');

const PRIVATE_V4: [string, number][] = [
  ['10.0.0.0', 8],
  ['127.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
];
const METADATA = ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254', '100.100.100.200'];

const v4Num = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const v4Str = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const hex = (n: number) => n.toString(16);
const hi = (n: number) => hex(n >>> 16);
const lo = (n: number) => hex(n & 0xffff);

/** Every IPv4 address inside one of `ranges`. */
const inRange = (ranges: [string, number][]) =>
  fc.tuple(fc.constantFrom(...ranges), fc.integer({ min: 0, max: 0xffffffff })).map(([[net, bits], r]) => {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return ((v4Num(net) & mask) | (r & ~mask)) >>> 0;
  });

/** Textual forms that all route to the IPv4 address `n`. */
function v4Forms(n: number): string[] {
  const d = v4Str(n);
  return [
    d,
    `::ffff:${d}`,
    `::FFFF:${d}`,
    `::ffff:${hi(n)}:${lo(n)}`,
    `::FFFF:${hi(n).toUpperCase()}:${lo(n).toUpperCase()}`,
    `0:0:0:0:0:ffff:${d}`,
    `0000:0000:0000:0000:0000:ffff:${hi(n).padStart(4, '0')}:${lo(n).padStart(4, '0')}`,
    `[::ffff:${d}]`,
    `::ffff:0:${d}`,
    `64:ff9b::${d}`,
    `64:ff9b::${hi(n)}:${lo(n)}`,
    `2002:${hi(n)}:${lo(n)}::1`,
    `2002:${hi(n)}:${lo(n)}:abcd:1:2:3:4`,
    ...(n > 1 ? [`::${d}`, `::${hi(n)}:${lo(n)}`] : []),
  ];
}

/** Compressed (longest zero run as ::), expanded with leading zeros, and upper-case forms of an IPv6 address. */
function v6Forms(groups: number[]): string[] {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const plain = groups.map(hex);
  const compressed =
    best < 0
      ? plain.join(':')
      : `${plain.slice(0, best).join(':')}::${plain.slice(best + bestLen).join(':')}`;
  return [
    compressed,
    compressed.toUpperCase(),
    groups.map((g) => hex(g).padStart(4, '0')).join(':'),
    plain.join(':').toUpperCase(),
    `[${compressed}]`,
  ];
}

const inV6Range = (prefix: number[], bits: number) =>
  fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((rand) =>
    rand.map((r, i) => {
      const keep = Math.max(0, Math.min(16, bits - i * 16));
      const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
      return ((prefix[i] ?? 0) & mask) | (r & ~mask & 0xffff);
    }),
  );

describe('address policy', () => {
  it('classifies the named ranges', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['100.64.0.1', 'cgnat'],
      ['169.254.1.1', 'link_local'],
      ['169.254.169.254', 'metadata'],
      ['fd00:ec2::254', 'metadata'],
      ['FD00:EC2:0:0:0:0:0:254', 'metadata'],
      ['::ffff:169.254.169.254', 'metadata'],
      ['224.0.0.1', 'multicast'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['255.255.255.255', 'broadcast'],
      ['240.0.0.1', 'reserved'],
      ['198.19.0.1', 'benchmarking'],
      ['192.0.2.1', 'documentation'],
      ['2001:db8::1', 'documentation'],
      ['fc00::1', 'ula'],
      ['fe80::1%eth0', 'link_local'],
      ['ff02::1', 'multicast'],
      ['::1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['64:ff9b::a00:1', 'private'],
      ['2002:7f00:1::', 'loopback'],
      ['2001::1', 'reserved'], // Teredo
      ['4000::1', 'reserved'], // outside 2000::/3
      ['8.8.8.8', 'public'],
      ['2606:4700:4700::1111', 'public'],
      ['::ffff:8.8.8.8', 'public'],
    ];
    for (const [addr, category] of cases) expect(classifyAddress(addr).category, addr).toBe(category);
    expect(classifyAddress('::ffff:127.0.0.1').embeddedV4).toBe('127.0.0.1');
  });

  it('refuses ambiguous and malformed text', () => {
    for (const bad of [
      '',
      'localhost',
      '127.1',
      '0177.0.0.1',
      '0x7f.0.0.1',
      '127.0.0.01',
      '2130706433',
      '1.2.3.4.5',
      ' 1.2.3.4',
      '::ffff:127.0.0.01',
      ':::1',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '12345::1',
      '[::1',
    ]) {
      expect(classifyAddress(bad).category, bad).toBe('invalid');
      expect(isAddressAllowed(bad, { allowPrivate: true }), bad).toBe(false);
    }
  });

  it('property: every address in a refused IPv4 range, in every textual form, is refused', () => {
    fc.assert(
      fc.property(inRange(REFUSED_V4), (n) => {
        for (const form of v4Forms(n)) expect(isAddressAllowed(form), form).toBe(false);
      }),
      { numRuns: 2_000 },
    );
  });

  it('property: any IPv4 address and its IPv6 forms are refused exactly when the independent list says so', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        const refused = oracle.check(v4Str(n), 'ipv4');
        for (const form of v4Forms(n)) expect(isAddressAllowed(form), form).toBe(!refused);
      }),
      { numRuns: 5_000 },
    );
  });

  it('property: leading zeros in any IPv4 octet are refused as ambiguous, even for public addresses', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 3 }), (n, i) => {
        const octets = v4Str(n).split('.');
        octets[i] = `0${octets[i]}`;
        expect(isAddressAllowed(octets.join('.'), { allowPrivate: true })).toBe(false);
        expect(isAddressAllowed(`::ffff:${octets.join('.')}`, { allowPrivate: true })).toBe(false);
      }),
    );
  });

  it('property: every address in a refused IPv6 range, compressed, expanded or upper-case, is refused', () => {
    const ranges: [number[], number][] = [
      [[0xfc00], 7],
      [[0xfe80], 10],
      [[0xff00], 8],
      [[0x2001, 0x0db8], 32],
      [[0x2001, 0], 23],
      [[0x3fff], 20],
      [[0x0064, 0xff9b, 0x0001], 48],
      [[0x4000], 2], // 4000::/2 and beyond: outside global unicast
      [[0x0100, 0, 0, 0], 64],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...ranges).chain(([p, b]) => inV6Range(p, b)),
        (groups) => {
          for (const form of v6Forms(groups)) {
            expect(parseV6(form.replace(/^\[|\]$/g, '')), form).toEqual(groups);
            expect(isAddressAllowed(form), form).toBe(false);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('property: allowPrivate opens loopback and RFC 1918 in every form, never metadata or link-local', () => {
    fc.assert(
      fc.property(inRange(PRIVATE_V4), (n) => {
        for (const form of v4Forms(n)) {
          expect(isAddressAllowed(form), form).toBe(false);
          expect(isAddressAllowed(form, { allowPrivate: true }), form).toBe(true);
        }
      }),
    );
    for (const m of METADATA) {
      expect(isAddressAllowed(m, { allowPrivate: true }), m).toBe(false);
      for (const form of m.includes(':') ? [m] : v4Forms(v4Num(m))) {
        expect(checkAddress(form, { allowPrivate: true }).category, form).toBe('metadata');
      }
    }
    expect(isAddressAllowed('169.254.1.1', { allowPrivate: true })).toBe(false);
    expect(isAddressAllowed('fe80::1', { allowPrivate: true })).toBe(false);
    expect(isAddressAllowed('fd12::1', { allowPrivate: true })).toBe(true);
    expect(isAddressAllowed('::1', { allowPrivate: true })).toBe(true);
    expect(isAddressAllowed('0.0.0.0', { allowPrivate: true })).toBe(false);
  });
});
