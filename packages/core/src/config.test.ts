import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, envName, loadConfig } from './config.js';

function tmpFile(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'caracal-config-'));
  const file = join(dir, 'caracal.json');
  writeFileSync(file, content);
  return file;
}

describe('loadConfig', () => {
  it('applies defaults', () => {
    const c = loadConfig(configSchema, { env: {} });
    expect(c.ports).toEqual({
      api: 3000,
      console: 3001,
      sts: 8080,
      gateway: 8081,
      audit: 9090,
      coordinator: 4000,
    });
    expect(c.bus.maxDeliveries).toBe(8);
    expect(c.bus.claimIdleMs).toBe(30_000);
    expect(c.host).toBe('127.0.0.1');
  });

  it('takes flags over env over file over defaults', () => {
    const file = tmpFile(
      JSON.stringify({ host: 'file-host', logLevel: 'warn', ports: { api: 1111, sts: 1112 } }),
    );
    const env = { CARACAL_PORTS_API: '2222', CARACAL_LOG_LEVEL: 'debug' };
    const c = loadConfig(configSchema, { env, file, flags: { ports: { api: 3333 } } });
    expect(c.ports.api).toBe(3333); // flag
    expect(c.logLevel).toBe('debug'); // env over file
    expect(c.ports.sts).toBe(1112); // file over default
    expect(c.host).toBe('file-host');
    expect(c.ports.gateway).toBe(8081); // default
  });

  it('reads the file named by CARACAL_CONFIG', () => {
    const file = tmpFile(JSON.stringify({ ports: { audit: 9999 } }));
    expect(loadConfig(configSchema, { env: { CARACAL_CONFIG: file } }).ports.audit).toBe(9999);
  });

  it('reports every invalid field at once, with its env name', () => {
    const env = {
      CARACAL_PORTS_API: 'abc',
      CARACAL_PORTS_STS: '70000',
      CARACAL_LOG_LEVEL: 'loud',
      CARACAL_DATABASE_URL: 'not a url',
      CARACAL_BUS_HMAC_KEY: 'short',
      CARACAL_BUS_MAX_DELIVERIES: '0',
    };
    let err: unknown;
    try {
      loadConfig(configSchema, { env });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const name of [
      'CARACAL_PORTS_API',
      'CARACAL_PORTS_STS',
      'CARACAL_LOG_LEVEL',
      'CARACAL_DATABASE_URL',
      'CARACAL_BUS_HMAC_KEY',
      'CARACAL_BUS_MAX_DELIVERIES',
    ]) {
      expect(problems).toContain(name);
    }
    expect((err as ConfigError).problems).toHaveLength(6);
  });

  it('reports an unreadable or malformed file', () => {
    expect(() => loadConfig(configSchema, { env: {}, file: '/nonexistent/caracal.json' })).toThrow(
      ConfigError,
    );
    expect(() => loadConfig(configSchema, { env: {}, file: tmpFile('{ nope') })).toThrow(/caracal\.json/);
    expect(() => loadConfig(configSchema, { env: {}, file: tmpFile('[1,2]') })).toThrow(/JSON object/);
  });

  it('rejects unknown keys in the file so typos do not pass silently', () => {
    const file = tmpFile(JSON.stringify({ prots: { api: 1 } }));
    expect(() => loadConfig(configSchema, { env: {}, file })).toThrow(/prots/);
  });

  it('derives env names from paths', () => {
    expect(envName(['databaseUrl'])).toBe('CARACAL_DATABASE_URL');
    expect(envName(['http', 'bodyLimitBytes'])).toBe('CARACAL_HTTP_BODY_LIMIT_BYTES');
  });
});
