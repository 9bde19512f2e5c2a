import { CaracalError } from '@caracal/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseTokenRequest, SESSION_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from './request.js';

const valid = {
  grant_type: TOKEN_EXCHANGE_GRANT,
  zone_id: 'zone_1',
  application_id: 'app_1',
  client_secret: 's3cret-value',
  resource: 'resource://crm/contacts',
  scope: 'read write',
};

function errorOf(body: unknown, query?: Record<string, unknown>) {
  try {
    parseTokenRequest(body, query);
  } catch (err) {
    expect(err).toBeInstanceOf(CaracalError);
    return err as CaracalError;
  }
  throw new Error('expected an error');
}

describe('token request', () => {
  it('parses a valid exchange', () => {
    expect(
      parseTokenRequest(
        { ...valid, resource: ['resource://crm/a', 'resource://crm/a'], ttl_seconds: '60' },
        {},
      ),
    ).toEqual({
      zoneId: 'zone_1',
      applicationId: 'app_1',
      clientSecret: 's3cret-value',
      resources: ['resource://crm/a'],
      scopes: ['read', 'write'],
      ttlSeconds: 60,
    });
    expect(
      parseTokenRequest({ ...valid, subject_token: 'a.b.c', subject_token_type: SESSION_TOKEN_TYPE }, {})
        .subjectToken,
    ).toBe('a.b.c');
  });

  it.each([
    ['query string', valid, { zone_id: 'x' }, 'invalid_request', 400],
    ['unknown parameter', { ...valid, extra: '1' }, {}, 'invalid_request', 400],
    ['duplicated singleton', { ...valid, scope: ['read', 'write'] }, {}, 'invalid_request', 400],
    ['missing grant', { ...valid, grant_type: undefined }, {}, 'invalid_request', 400],
    ['other grant', { ...valid, grant_type: 'client_credentials' }, {}, 'unsupported_grant_type', 400],
    ['no resource', { ...valid, resource: undefined }, {}, 'invalid_target', 400],
    ['bad resource', { ...valid, resource: 'https://evil.example' }, {}, 'invalid_target', 400],
    ['dot segment', { ...valid, resource: 'resource://crm/../admin' }, {}, 'invalid_target', 400],
    ['no scope', { ...valid, scope: '   ' }, {}, 'invalid_scope', 400],
    ['quote in scope', { ...valid, scope: 'a"b' }, {}, 'invalid_scope', 400],
    ['bad ttl', { ...valid, ttl_seconds: '-5' }, {}, 'invalid_request', 400],
    ['token without type', { ...valid, subject_token: 'x' }, {}, 'invalid_request', 400],
    ['bad app id', { ...valid, application_id: 'a b' }, {}, 'invalid_client', 401],
  ])('%s → %s', (_n, body, query, error, status) => {
    const e = errorOf(body, query);
    expect(e.extras.error).toBe(error);
    expect(e.code).toBe(error);
    expect(e.status).toBe(status);
  });

  it('never echoes the client secret', () => {
    const e = errorOf({ ...valid, client_secret: 'TOPSECRET', resource: 'nope' });
    expect(JSON.stringify({ ...e.extras, detail: e.detail })).not.toContain('TOPSECRET');
  });

  it('fuzz: any body is either a valid request or a 4xx/503 OAuth error, never another exception', () => {
    const key = fc.oneof(
      fc.constantFrom(
        'grant_type',
        'zone_id',
        'application_id',
        'client_secret',
        'resource',
        'scope',
        'ttl_seconds',
        'subject_token',
        'subject_token_type',
        'session_id',
      ),
      fc.string(),
    );
    const value = fc.oneof(
      fc.string(),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.constant(TOKEN_EXCHANGE_GRANT),
      fc.constant('resource://a/b'),
    );
    fc.assert(
      fc.property(fc.dictionary(key, value), fc.boolean(), (body, withValid) => {
        const input = withValid ? { ...valid, ...body } : body;
        try {
          const r = parseTokenRequest(input, {});
          expect(r.resources.length).toBeGreaterThan(0);
          expect(r.scopes.length).toBeGreaterThan(0);
        } catch (err) {
          expect(err).toBeInstanceOf(CaracalError);
          const e = err as CaracalError;
          expect([400, 401, 403, 503]).toContain(e.status);
          expect(typeof e.extras.error).toBe('string');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
