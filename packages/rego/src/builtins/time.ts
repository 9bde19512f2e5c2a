/** time.* built-ins. Time zones come from Intl; layouts follow Go's reference time (2006-01-02T15:04:05Z07:00). */
import { isNumber, normInt, type Value } from '../value.js';
import { arr, type BuiltinDef, BuiltinError, int, str, typeErr } from './types.js';

const MIN_NS = -9223372036854775808n;
const MAX_NS = 9223372036854775807n;
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

interface Local {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  ns: number;
  wd: number;
  offsetMin: number;
  zone: string;
}

const fmtCache = new Map<string, Intl.DateTimeFormat>();

function offsetMinutes(ms: number, tz: string): number {
  if (tz === 'UTC' || tz === '') return 0;
  let f = fmtCache.get(tz);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: tz === 'Local' ? undefined : tz,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new BuiltinError(`unknown time zone ${tz}`);
    }
    fmtCache.set(tz, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  const asUTC = Date.UTC(
    Number(parts.year),
    Number(parts.month) - 1,
    Number(parts.day),
    Number(parts.hour),
    Number(parts.minute),
    Number(parts.second),
  );
  return Math.round((asUTC - Math.floor(ms / 1000) * 1000) / 60000);
}

function toLocal(ns: bigint, tz: string): Local {
  const ms = Number(ns / 1_000_000n) - (ns % 1_000_000n < 0n ? 1 : 0);
  let nanos = Number(((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n);
  const off = offsetMinutes(ms, tz);
  const d = new Date(Math.floor(ms / 1000) * 1000 + off * 60000);
  if (nanos < 0) nanos += 1e9;
  return {
    y: d.getUTCFullYear(),
    mo: d.getUTCMonth() + 1,
    d: d.getUTCDate(),
    h: d.getUTCHours(),
    mi: d.getUTCMinutes(),
    s: d.getUTCSeconds(),
    ns: nanos,
    wd: d.getUTCDay(),
    offsetMin: off,
    zone: tz === '' ? 'UTC' : tz,
  };
}

function nsArg(name: string, v: Value): { ns: bigint; tz: string; layout?: string } {
  if (isNumber(v)) return { ns: toNs(name, v), tz: 'UTC' };
  if (Array.isArray(v)) {
    const [n, tz, layout] = v;
    if (!isNumber(n as Value)) throw typeErr(name, 1, 'number', n as Value);
    if (tz !== undefined && typeof tz !== 'string') throw typeErr(name, 1, 'string', tz);
    if (layout !== undefined && typeof layout !== 'string') throw typeErr(name, 1, 'string', layout);
    const out: { ns: bigint; tz: string; layout?: string } = {
      ns: toNs(name, n as number),
      tz: (tz as string | undefined) || 'UTC',
    };
    if (layout !== undefined) out.layout = layout as string;
    return out;
  }
  throw typeErr(name, 1, 'one of {number, array}', v);
}

function toNs(name: string, v: number | bigint): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else {
    if (!Number.isFinite(v)) throw new BuiltinError(`${name}: timestamp too big`);
    b = BigInt(Math.trunc(v));
  }
  if (b > MAX_NS || b < MIN_NS) throw new BuiltinError(`${name}: timestamp too big`);
  return b;
}

function fromParts(
  name: string,
  y: number,
  mo: number,
  d: number,
  h: number,
  mi: number,
  s: number,
  nanos: number,
  offMin: number,
): Value {
  const ms = Date.UTC(y, mo - 1, d, h, mi, s) - offMin * 60000;
  const dt = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (y < 100) dt.setUTCFullYear(y);
  const msFixed = dt.getTime() - offMin * 60000;
  void ms;
  const ns = BigInt(msFixed) * 1_000_000n + BigInt(nanos);
  if (ns > MAX_NS || ns < MIN_NS) throw new BuiltinError(`${name}: time outside of valid range`);
  return normInt(ns);
}

function parseRFC3339(name: string, s: string): Value {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/.exec(
    s,
  );
  if (!m)
    throw new BuiltinError(
      `${name}: parsing time ${JSON.stringify(s)} as "2006-01-02T15:04:05Z07:00": cannot parse`,
    );
  const [, y, mo, d, h, mi, sec, frac = '', zone = 'Z'] = m;
  const off =
    zone === 'Z' || zone === 'z'
      ? 0
      : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  return fromParts(
    name,
    Number(y),
    Number(mo),
    Number(d),
    Number(h),
    Number(mi),
    Number(sec),
    Number(frac.padEnd(9, '0')),
    off,
  );
}

const LAYOUTS: Record<string, string> = {
  ANSIC: 'Mon Jan _2 15:04:05 2006',
  UnixDate: 'Mon Jan _2 15:04:05 MST 2006',
  RubyDate: 'Mon Jan 02 15:04:05 -0700 2006',
  RFC822: '02 Jan 06 15:04 MST',
  RFC822Z: '02 Jan 06 15:04 -0700',
  RFC850: 'Monday, 02-Jan-06 15:04:05 MST',
  RFC1123: 'Mon, 02 Jan 2006 15:04:05 MST',
  RFC1123Z: 'Mon, 02 Jan 2006 15:04:05 -0700',
  RFC3339: '2006-01-02T15:04:05Z07:00',
  RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
  Kitchen: '3:04PM',
  Stamp: 'Jan _2 15:04:05',
  StampMilli: 'Jan _2 15:04:05.000',
  StampMicro: 'Jan _2 15:04:05.000000',
  StampNano: 'Jan _2 15:04:05.000000000',
  DateTime: '2006-01-02 15:04:05',
  DateOnly: '2006-01-02',
  TimeOnly: '15:04:05',
};

const TOKENS = [
  'January',
  'Monday',
  '2006',
  '-07:00:00',
  '-07:00',
  'Z07:00:00',
  'Z07:00',
  '-0700',
  'Z0700',
  '-07',
  'Z07',
  'Jan',
  'Mon',
  'MST',
  '01',
  '02',
  '_2',
  '15',
  '03',
  '04',
  '05',
  '06',
  'PM',
  'pm',
  '1',
  '2',
  '3',
  '4',
  '5',
];

function tokenize(layout: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < layout.length) {
    const frac = /^[.,](0+|9+)/.exec(layout.slice(i));
    if (frac && !/\d/.test(layout[i + frac[0].length] ?? '')) {
      out.push(`frac:${frac[0]}`);
      i += frac[0].length;
      continue;
    }
    const t = TOKENS.find((tok) => layout.startsWith(tok, i));
    if (t) {
      out.push(`tok:${t}`);
      i += t.length;
    } else {
      out.push(`lit:${layout[i]}`);
      i++;
    }
  }
  return out;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function formatTime(l: Local, layout: string): string {
  let out = '';
  for (const t of tokenize(LAYOUTS[layout] ?? layout)) {
    const v = t.slice(4);
    if (t.startsWith('lit:')) {
      out += v;
      continue;
    }
    if (t.startsWith('frac:')) {
      const v = t.slice(5);
      const digits = pad(l.ns, 9);
      const n = v.length - 1;
      if (v[1] === '0') out += v[0] + digits.slice(0, n);
      else {
        const trimmed = digits.slice(0, n).replace(/0+$/, '');
        if (trimmed) out += v[0] + trimmed;
      }
      continue;
    }
    const off = l.offsetMin;
    const sign = off < 0 ? '-' : '+';
    const oh = pad(Math.floor(Math.abs(off) / 60));
    const om = pad(Math.abs(off) % 60);
    switch (v) {
      case '2006':
        out += pad(l.y, 4);
        break;
      case '06':
        out += pad(l.y % 100);
        break;
      case 'January':
        out += MONTHS[l.mo - 1];
        break;
      case 'Jan':
        out += (MONTHS[l.mo - 1] as string).slice(0, 3);
        break;
      case '01':
        out += pad(l.mo);
        break;
      case '1':
        out += String(l.mo);
        break;
      case 'Monday':
        out += DAYS[l.wd];
        break;
      case 'Mon':
        out += (DAYS[l.wd] as string).slice(0, 3);
        break;
      case '02':
        out += pad(l.d);
        break;
      case '_2':
        out += String(l.d).padStart(2, ' ');
        break;
      case '2':
        out += String(l.d);
        break;
      case '15':
        out += pad(l.h);
        break;
      case '03':
        out += pad(l.h % 12 === 0 ? 12 : l.h % 12);
        break;
      case '3':
        out += String(l.h % 12 === 0 ? 12 : l.h % 12);
        break;
      case '04':
        out += pad(l.mi);
        break;
      case '4':
        out += String(l.mi);
        break;
      case '05':
        out += pad(l.s);
        break;
      case '5':
        out += String(l.s);
        break;
      case 'PM':
        out += l.h >= 12 ? 'PM' : 'AM';
        break;
      case 'pm':
        out += l.h >= 12 ? 'pm' : 'am';
        break;
      case 'MST':
        out += off === 0 ? 'UTC' : `${sign}${oh}${om}`;
        break;
      case 'Z07:00':
        out += off === 0 ? 'Z' : `${sign}${oh}:${om}`;
        break;
      case 'Z0700':
        out += off === 0 ? 'Z' : `${sign}${oh}${om}`;
        break;
      case 'Z07':
        out += off === 0 ? 'Z' : `${sign}${oh}`;
        break;
      case '-07:00':
        out += `${sign}${oh}:${om}`;
        break;
      case '-0700':
        out += `${sign}${oh}${om}`;
        break;
      case '-07':
        out += `${sign}${oh}`;
        break;
      default:
        out += v;
    }
  }
  return out;
}

function parseWithLayout(name: string, layoutIn: string, value: string): Value {
  const layout = LAYOUTS[layoutIn] ?? layoutIn;
  let i = 0;
  let y = 1;
  let mo = 1;
  let d = 1;
  let h = 0;
  let mi = 0;
  let s = 0;
  let nanos = 0;
  let off = 0;
  let pm: boolean | undefined;
  const fail = (): never => {
    throw new BuiltinError(
      `${name}: parsing time ${JSON.stringify(value)} as ${JSON.stringify(layoutIn)}: cannot parse`,
    );
  };
  const num = (min: number, max: number): number => {
    const m = new RegExp(`^\\d{${min},${max}}`).exec(value.slice(i));
    if (!m) return fail();
    i += m[0].length;
    return Number(m[0]);
  };
  const word = (list: string[], len?: number): number => {
    for (let k = 0; k < list.length; k++) {
      const w = len ? (list[k] as string).slice(0, len) : (list[k] as string);
      if (value.slice(i, i + w.length).toLowerCase() === w.toLowerCase()) {
        i += w.length;
        return k;
      }
    }
    return fail();
  };
  const zone = (colon: boolean, z: boolean): void => {
    if (z && (value[i] === 'Z' || value[i] === 'z')) {
      i++;
      return;
    }
    const sg = value[i];
    if (sg !== '+' && sg !== '-') fail();
    i++;
    const hh = num(2, 2);
    let mm = 0;
    if (colon) {
      if (value[i] !== ':') fail();
      i++;
      mm = num(2, 2);
    } else if (/^\d{2}/.test(value.slice(i))) mm = num(2, 2);
    off = (sg === '-' ? -1 : 1) * (hh * 60 + mm);
  };
  for (const t of tokenize(layout)) {
    const v = t.slice(4);
    if (t.startsWith('lit:')) {
      if (value[i] !== v) fail();
      i++;
      continue;
    }
    if (t.startsWith('frac:')) {
      const v = t.slice(5);
      if (value[i] === '.' || value[i] === ',') {
        i++;
        const m = /^\d+/.exec(value.slice(i));
        if (!m) fail();
        i += (m as RegExpExecArray)[0].length;
        nanos = Number((m as RegExpExecArray)[0].slice(0, 9).padEnd(9, '0'));
      } else if (v[1] === '0') fail();
      continue;
    }
    switch (v) {
      case '2006':
        y = num(4, 4);
        break;
      case '06':
        y = 2000 + num(2, 2);
        if (y >= 2069) y -= 100;
        break;
      case 'January':
        mo = word(MONTHS) + 1;
        break;
      case 'Jan':
        mo = word(MONTHS, 3) + 1;
        break;
      case '01':
        mo = num(2, 2);
        break;
      case '1':
        mo = num(1, 2);
        break;
      case 'Monday':
        word(DAYS);
        break;
      case 'Mon':
        word(DAYS, 3);
        break;
      case '02':
        d = num(2, 2);
        break;
      case '_2':
        if (value[i] === ' ') i++;
        d = num(1, 2);
        break;
      case '2':
        d = num(1, 2);
        break;
      case '15':
        h = num(1, 2);
        break;
      case '03':
        h = num(2, 2);
        break;
      case '3':
        h = num(1, 2);
        break;
      case '04':
        mi = num(2, 2);
        break;
      case '4':
        mi = num(1, 2);
        break;
      case '05':
        s = num(2, 2);
        break;
      case '5':
        s = num(1, 2);
        break;
      case 'PM':
      case 'pm': {
        const w = value.slice(i, i + 2).toUpperCase();
        if (w !== 'AM' && w !== 'PM') fail();
        pm = w === 'PM';
        i += 2;
        break;
      }
      case 'MST': {
        const m = /^[A-Z]{3,4}/.exec(value.slice(i));
        if (!m) fail();
        i += (m as RegExpExecArray)[0].length;
        break;
      }
      case 'Z07:00':
        zone(true, true);
        break;
      case 'Z0700':
        zone(false, true);
        break;
      case 'Z07':
        zone(false, true);
        break;
      case '-07:00':
        zone(true, false);
        break;
      case '-0700':
        zone(false, false);
        break;
      case '-07':
        zone(false, false);
        break;
      default:
        fail();
    }
    // fractional seconds after seconds even when the layout has none
    if (
      (v === '05' || v === '5') &&
      value[i] === '.' &&
      !layout.slice(layout.indexOf(v) + v.length).startsWith('.')
    ) {
      i++;
      const m = /^\d+/.exec(value.slice(i));
      if (m) {
        i += m[0].length;
        nanos = Number(m[0].slice(0, 9).padEnd(9, '0'));
      }
    }
  }
  if (i !== value.length) fail();
  if (pm !== undefined) {
    if (pm && h < 12) h += 12;
    if (!pm && h === 12) h = 0;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59)
    throw new BuiltinError(`${name}: parsing time ${JSON.stringify(value)}: value out of range`);
  return fromParts(name, y, mo, d, h, mi, s, nanos, off);
}

function parseDuration(name: string, s: string): Value {
  if (s === '0') return 0;
  const m = /^([+-])?((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) throw new BuiltinError(`${name}: time: invalid duration ${JSON.stringify(s)}`);
  const unit: Record<string, number> = {
    ns: 1,
    us: 1e3,
    µs: 1e3,
    μs: 1e3,
    ms: 1e6,
    s: 1e9,
    m: 60e9,
    h: 3600e9,
  };
  let total = 0;
  for (const p of s.replace(/^[+-]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g))
    total += Number(p[1]) * (unit[p[2] as string] as number);
  const r = Math.round(total);
  return m[1] === '-' ? -r : r;
}

function daysIn(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
}

function diff(a: Local, b: Local): number[] {
  // b >= a
  let year = b.y - a.y;
  let month = b.mo - a.mo;
  let day = b.d - a.d;
  let hour = b.h - a.h;
  let min = b.mi - a.mi;
  let sec = b.s - a.s;
  if (sec < 0) {
    sec += 60;
    min--;
  }
  if (min < 0) {
    min += 60;
    hour--;
  }
  if (hour < 0) {
    hour += 24;
    day--;
  }
  if (day < 0) {
    day += daysIn(a.y, a.mo);
    month--;
  }
  if (month < 0) {
    month += 12;
    year--;
  }
  return [year, month, day, hour, min, sec];
}

export const timeBuiltins: BuiltinDef[] = [
  {
    name: 'time.parse_rfc3339_ns',
    arity: 1,
    fn: (a) => parseRFC3339('time.parse_rfc3339_ns', str('time.parse_rfc3339_ns', a, 0)),
  },
  {
    name: 'time.parse_ns',
    arity: 2,
    fn: (a) => parseWithLayout('time.parse_ns', str('time.parse_ns', a, 0), str('time.parse_ns', a, 1)),
  },
  {
    name: 'time.parse_duration_ns',
    arity: 1,
    fn: (a) => parseDuration('time.parse_duration_ns', str('time.parse_duration_ns', a, 0)),
  },
  {
    name: 'time.date',
    arity: 1,
    fn: (a) => {
      const { ns, tz } = nsArg('time.date', a[0] as Value);
      const l = toLocal(ns, tz);
      return [l.y, l.mo, l.d];
    },
  },
  {
    name: 'time.clock',
    arity: 1,
    fn: (a) => {
      const { ns, tz } = nsArg('time.clock', a[0] as Value);
      const l = toLocal(ns, tz);
      return [l.h, l.mi, l.s];
    },
  },
  {
    name: 'time.weekday',
    arity: 1,
    fn: (a) => {
      const { ns, tz } = nsArg('time.weekday', a[0] as Value);
      return DAYS[toLocal(ns, tz).wd] as string;
    },
  },
  {
    name: 'time.add_date',
    arity: 4,
    fn: (a) => {
      const { ns } = nsArg('time.add_date', a[0] as Value);
      const l = toLocal(ns, 'UTC');
      const y = int('time.add_date', a, 1);
      const m = int('time.add_date', a, 2);
      const d = int('time.add_date', a, 3);
      const dt = new Date(Date.UTC(2000, 0, 1));
      dt.setUTCFullYear(l.y + y, l.mo - 1 + m, l.d + d);
      dt.setUTCHours(l.h, l.mi, l.s);
      const out = BigInt(dt.getTime()) * 1_000_000n + BigInt(l.ns);
      if (out > MAX_NS || out < MIN_NS) throw new BuiltinError('time.add_date: time outside of valid range');
      return normInt(out);
    },
  },
  {
    name: 'time.diff',
    arity: 2,
    fn: (a) => {
      const x = nsArg('time.diff', a[0] as Value);
      const y = nsArg('time.diff', a[1] as Value);
      let la = toLocal(x.ns, x.tz);
      let lb = toLocal(y.ns, x.tz);
      if (x.ns > y.ns) [la, lb] = [lb, la];
      return diff(la, lb);
    },
  },
  {
    name: 'time.format',
    arity: 1,
    fn: (a) => {
      const { ns, tz, layout } = nsArg('time.format', a[0] as Value);
      return formatTime(toLocal(ns, tz), layout ?? 'RFC3339Nano');
    },
  },
];

export { arr };
