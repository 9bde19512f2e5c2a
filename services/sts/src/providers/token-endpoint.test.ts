import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FetchLike, requestToken, TokenEndpointError } from './token-endpoint.js';
import type { OAuth2ClientCredentialsConfig } from './types.js';

const SECRET = 'client-secret-MARKER-41f9';
const config: OAuth2ClientCredentialsConfig = {
  kind: 'oauth2_client_credentials',
  tokenUrl: 'http://127.0.0.1:1/token',
  clientId: 'c1',
  clientSecret: SECRET,
};

const answer =
  (status: number, text: string): FetchLike =>
  async () => ({ status, text: async () => text });

const oauthBody = fc.record(
  {
    error: fc.oneof(
      fc.constantFrom(
        'invalid_grant',
        'invalid_client',
        'unauthorized_client',
        'invalid_scope',
        'server_error',
      ),
      fc.string(),
      fc.constant(SECRET),
    ),
    error_description: fc.constant(`echo ${SECRET}`),
    access_token: fc.oneof(fc.string(), fc.constant(42)),
    expires_in: fc.oneof(fc.integer(), fc.string(), fc.double()),
    token_type: fc.string(),
  },
  { requiredKeys: [] },
);

describe('token endpoint answers', () => {
  it('any answer is a token or a classified error that carries no secret', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 100, max: 599 }),
        fc.oneof(
          oauthBody.map((b) => JSON.stringify(b)),
          fc.string(),
          fc.constant(SECRET),
        ),
        async (status, text) => {
          let outcome: unknown;
          try {
            outcome = await requestToken(answer(status, text), config, undefined, 1_000);
          } catch (err) {
            outcome = err;
          }
          if (outcome instanceof TokenEndpointError) {
            expect(outcome.message).not.toContain(SECRET);
            expect(outcome.code).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
            if (outcome.code === SECRET) throw new Error('secret-shaped code');
            if (status >= 500) expect(outcome.reason).toBe('transient');
            if (outcome.reason === 'revoked') {
              expect(['invalid_grant', 'invalid_client', 'unauthorized_client']).toContain(outcome.code);
            }
            return;
          }
          expect(status).toBeGreaterThanOrEqual(200);
          expect(status).toBeLessThan(300);
          const grant = outcome as Awaited<ReturnType<typeof requestToken>>;
          expect(typeof grant.token.accessToken).toBe('string');
          expect(grant.token.accessToken.length).toBeGreaterThan(0);
          if (grant.expiresIn !== undefined) expect(grant.expiresIn).toBeGreaterThan(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('classifies the answers the broker acts on', async () => {
    const cases: [number, string, string, string][] = [
      [400, '{"error":"invalid_grant"}', 'revoked', 'invalid_grant'],
      [401, '{"error":"invalid_client"}', 'revoked', 'invalid_client'],
      [400, '{"error":"invalid_scope"}', 'rejected', 'invalid_scope'],
      [403, 'forbidden', 'rejected', 'http_403'],
      [429, '{"error":"slow_down"}', 'transient', 'slow_down'],
      [502, '<html>', 'transient', 'http_502'],
      [200, '{"token_type":"bearer"}', 'transient', 'malformed_response'],
    ];
    for (const [status, text, reason, code] of cases) {
      await expect(requestToken(answer(status, text), config, undefined, 1_000)).rejects.toMatchObject({
        reason,
        code,
      });
    }
    const grant = await requestToken(
      answer(200, '{"access_token":"at","token_type":"bearer","expires_in":"90"}'),
      config,
      undefined,
      1_000,
    );
    expect(grant).toEqual({ token: { accessToken: 'at', tokenType: 'Bearer' }, expiresIn: 90 });
  });

  it('form-encodes client credentials into the Basic header', async () => {
    let seen: Record<string, string> = {};
    const capture: FetchLike = async (_url, init) => {
      seen = init.headers;
      return { status: 200, text: async () => '{"access_token":"x"}' };
    };
    await requestToken(capture, { ...config, clientId: 'a:b c', clientSecret: 'p&q' }, undefined, 1_000);
    const decoded = Buffer.from(String(seen.authorization).slice(6), 'base64').toString();
    expect(decoded).toBe('a%3Ab+c:p%26q');
  });
});
