/**
 * json.verify_schema / json.match_schema: a JSON Schema (draft-07 core) subset with gojsonschema's
 * error texts for the keywords it supports: type, properties, required, additionalProperties, items,
 * enum, const, minimum/maximum (+exclusive), minLength/maxLength, pattern, minItems/maxItems,
 * allOf/anyOf/oneOf/not. Unknown keywords are ignored; $ref is not resolved.
 */
import { equal, isInteger, isNumber, RObject, RSet, stringify, type Value } from '../value.js';
import { parseJSON } from './encoding.js';
import { type BuiltinDef, BuiltinError, typeErr } from './types.js';

const TYPES = ['array', 'boolean', 'integer', 'number', 'null', 'object', 'string'];

interface SchemaError {
  field: string;
  type: string;
  desc: string;
}

function load(name: string, v: Value, pos: number): Value {
  if (typeof v === 'string') {
    try {
      return parseJSON(v);
    } catch (e) {
      throw new BuiltinError(`${name}: ${(e as Error).message}`);
    }
  }
  if (v instanceof RObject || typeof v === 'boolean') return v;
  throw typeErr(name, pos, 'one of {string, object, boolean}', v);
}

/** Structural check of the schema; returns an error text or undefined. */
function checkSchema(s: Value): string | undefined {
  if (typeof s === 'boolean') return undefined;
  if (!(s instanceof RObject)) return 'schema must be an object or a boolean';
  const t = s.get('type');
  const ts = t === undefined ? [] : Array.isArray(t) ? t : [t];
  for (const x of ts)
    if (typeof x !== 'string' || !TYPES.includes(x))
      return `has a primitive type that is NOT VALID -- given: /${typeof x === 'string' ? x : stringify(x)}/ Expected valid values are:[${TYPES.join(' ')}]`;
  for (const k of ['properties', 'patternProperties', 'definitions']) {
    const p = s.get(k);
    if (p instanceof RObject)
      for (const [, sub] of p.sortedEntries()) {
        const e = checkSchema(sub);
        if (e) return e;
      }
  }
  for (const k of ['items', 'additionalProperties', 'not']) {
    const sub = s.get(k);
    if (sub instanceof RObject) {
      const e = checkSchema(sub);
      if (e) return e;
    }
  }
  for (const k of ['allOf', 'anyOf', 'oneOf']) {
    const subs = s.get(k);
    if (Array.isArray(subs))
      for (const sub of subs) {
        const e = checkSchema(sub);
        if (e) return e;
      }
  }
  return undefined;
}

function typeOf(v: Value): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'boolean';
  if (isNumber(v)) return isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v) || v instanceof RSet) return 'array';
  return 'object';
}

function validate(v: Value, s: Value, field: string, out: SchemaError[]): void {
  if (s === true || !(s instanceof RObject)) {
    if (s === false) out.push({ field, type: 'false', desc: 'False always fails validation' });
    return;
  }
  const t = s.get('type');
  if (t !== undefined) {
    const ts = (Array.isArray(t) ? t : [t]) as string[];
    const got = typeOf(v);
    if (!ts.includes(got) && !(got === 'integer' && ts.includes('number'))) {
      out.push({
        field,
        type: 'invalid_type',
        desc: `Invalid type. Expected: ${ts.join(', ')}, given: ${got}`,
      });
      return;
    }
  }
  const en = s.get('enum');
  if (Array.isArray(en) && !en.some((x) => equal(x, v)))
    out.push({
      field,
      type: 'enum',
      desc: `${field} must be one of the following: ${en.map((x) => stringify(x)).join(', ')}`,
    });
  const cst = s.get('const');
  if (cst !== undefined && !equal(cst, v))
    out.push({ field, type: 'const', desc: `${field} does not match: ${stringify(cst)}` });
  if (isNumber(v)) {
    const n = Number(v);
    const min = s.get('minimum');
    if (isNumber(min ?? null) && n < Number(min))
      out.push({
        field,
        type: 'number_gte',
        desc: `Must be greater than or equal to ${stringify(min as Value)}`,
      });
    const max = s.get('maximum');
    if (isNumber(max ?? null) && n > Number(max))
      out.push({
        field,
        type: 'number_lte',
        desc: `Must be less than or equal to ${stringify(max as Value)}`,
      });
    const emin = s.get('exclusiveMinimum');
    if (isNumber(emin ?? null) && n <= Number(emin))
      out.push({ field, type: 'number_gt', desc: `Must be greater than ${stringify(emin as Value)}` });
    const emax = s.get('exclusiveMaximum');
    if (isNumber(emax ?? null) && n >= Number(emax))
      out.push({ field, type: 'number_lt', desc: `Must be less than ${stringify(emax as Value)}` });
  }
  if (typeof v === 'string') {
    const len = [...v].length;
    const minL = s.get('minLength');
    if (isNumber(minL ?? null) && len < Number(minL))
      out.push({
        field,
        type: 'string_gte',
        desc: `String length must be greater than or equal to ${stringify(minL as Value)}`,
      });
    const maxL = s.get('maxLength');
    if (isNumber(maxL ?? null) && len > Number(maxL))
      out.push({
        field,
        type: 'string_lte',
        desc: `String length must be less than or equal to ${stringify(maxL as Value)}`,
      });
    const pat = s.get('pattern');
    if (typeof pat === 'string' && !new RegExp(pat, 'u').test(v))
      out.push({ field, type: 'pattern', desc: `Does not match pattern '${pat}'` });
  }
  const items = Array.isArray(v) ? v : v instanceof RSet ? v.sorted() : undefined;
  if (items) {
    const it = s.get('items');
    if (it !== undefined)
      for (let i = 0; i < items.length; i++)
        validate(items[i] as Value, it, `${field === '(root)' ? '' : `${field}.`}${i}`, out);
    const minI = s.get('minItems');
    if (isNumber(minI ?? null) && items.length < Number(minI))
      out.push({
        field,
        type: 'array_min_items',
        desc: `Array must have at least ${stringify(minI as Value)} items`,
      });
    const maxI = s.get('maxItems');
    if (isNumber(maxI ?? null) && items.length > Number(maxI))
      out.push({
        field,
        type: 'array_max_items',
        desc: `Array must have at most ${stringify(maxI as Value)} items`,
      });
  }
  if (v instanceof RObject) {
    const req = s.get('required');
    if (Array.isArray(req))
      for (const r of req)
        if (typeof r === 'string' && !v.has(r))
          out.push({ field, type: 'required', desc: `${r} is required` });
    const props = s.get('properties');
    const addl = s.get('additionalProperties');
    for (const [k, x] of v.sortedEntries()) {
      const key = String(k);
      const sub = props instanceof RObject ? props.get(k) : undefined;
      const path = field === '(root)' ? key : `${field}.${key}`;
      if (sub !== undefined) validate(x, sub, path, out);
      else if (addl === false)
        out.push({
          field,
          type: 'additional_property_not_allowed',
          desc: `Additional property ${key} is not allowed`,
        });
      else if (addl instanceof RObject) validate(x, addl, path, out);
    }
  }
  const all = s.get('allOf');
  if (Array.isArray(all)) for (const sub of all) validate(v, sub, field, out);
  const any = s.get('anyOf');
  if (Array.isArray(any) && !any.some((sub) => errorsOf(v, sub, field).length === 0))
    out.push({ field, type: 'number_any_of', desc: 'Must validate at least one schema (anyOf)' });
  const one = s.get('oneOf');
  if (Array.isArray(one) && one.filter((sub) => errorsOf(v, sub, field).length === 0).length !== 1)
    out.push({ field, type: 'number_one_of', desc: 'Must validate one and only one schema (oneOf)' });
  const not = s.get('not');
  if (not !== undefined && errorsOf(v, not, field).length === 0)
    out.push({ field, type: 'number_not', desc: 'Must not validate the schema (not)' });
}

function errorsOf(v: Value, s: Value, field: string): SchemaError[] {
  const out: SchemaError[] = [];
  validate(v, s, field, out);
  return out;
}

export const jsonSchemaBuiltins: BuiltinDef[] = [
  {
    name: 'json.verify_schema',
    arity: 1,
    fn: (a) => {
      let s: Value;
      try {
        s = load('json.verify_schema', a[0] as Value, 1);
      } catch (e) {
        if (e instanceof BuiltinError && e.code === 'eval_type_error') throw e;
        return [false, `jsonschema: ${(e as Error).message}`];
      }
      const err = checkSchema(s);
      return err ? [false, `jsonschema: ${err}`] : [true, null];
    },
  },
  {
    name: 'json.match_schema',
    arity: 2,
    fn: (a) => {
      const doc = load('json.match_schema', a[0] as Value, 1);
      const s = load('json.match_schema', a[1] as Value, 2);
      const err = checkSchema(s);
      if (err) throw new BuiltinError(`json.match_schema: ${err}`);
      const errs = errorsOf(doc, s, '(root)');
      const list = errs.map((e) =>
        RObject.fromEntries([
          ['desc', e.desc],
          ['error', `${e.field}: ${e.desc}`],
          ['field', e.field],
          ['type', e.type],
        ]),
      );
      return [errs.length === 0, list];
    },
  },
];
