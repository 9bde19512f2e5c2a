import { createServer } from 'node:http';
import type { Command } from 'commander';
import { type GlobalFlags, loadCliConfig, resolveSecrets } from './runtime.js';

const DEMO_POLICY = `package caracal.authz

import rego.v1

# Demo rule: the zone is read-only, whatever the grants say.
deny contains "demo_read_only" if "write" in input.scopes
`;

const RESOURCE = 'resource://demo/echo';

interface Opts {
  api?: string;
  sts?: string;
  gateway?: string;
  token?: string;
  zone: string;
  upstream: boolean;
  upstreamPort: string;
}

class ApiError extends Error {}

/** Creates a demo zone through the API; prints the curl that mints a mandate and the governed call through the Gateway. */
export function registerDemoCommand(program: Command) {
  program
    .command('demo')
    .description(
      'create a demo zone, application, resource and policy on a running Caracal; print a mint curl and a governed call through the Gateway',
    )
    .option('--api <url>', 'API URL (default from config)')
    .option('--sts <url>', 'STS URL (default from config)')
    .option('--gateway <url>', 'Gateway URL (default from config)')
    .option('--token <token>', 'admin token (default: the bootstrap token in the data dir)')
    .option('--zone <id>', 'zone id', 'demo')
    .option('--no-upstream', 'do not start the echo upstream (exit after setup)')
    .option('--upstream-port <port>', 'port of the echo upstream', '8090')
    .action(async (opts: Opts) => {
      const config = loadCliConfig(program.opts<GlobalFlags>());
      const api = opts.api ?? `http://${config.host}:${config.ports.api}`;
      const sts = opts.sts ?? `http://${config.host}:${config.ports.sts}`;
      const gateway = opts.gateway ?? `http://${config.host}:${config.ports.gateway}`;
      const token = opts.token ?? resolveSecrets(config).adminToken;
      const zone = opts.zone;
      const call = async (method: string, path: string, body?: unknown, okCodes: string[] = []) => {
        const res = await fetch(`${api}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body ? { 'content-type': 'application/json' } : {}),
          },
          ...(body ? { body: JSON.stringify(body) } : {}),
        }).catch((err: Error) => {
          throw new ApiError(`cannot reach the API at ${api} (${err.message}); is \`caracal up\` running?`);
        });
        const json = (await res.json()) as Record<string, unknown>;
        if (!res.ok && !okCodes.includes(String(json.code))) {
          throw new ApiError(`${method} ${path}: ${res.status} ${json.code}: ${json.detail}`);
        }
        return json;
      };

      const upstreamUrl = `http://127.0.0.1:${opts.upstreamPort}/echo`;
      await call('POST', '/v1/zones', { id: zone, name: 'Demo zone' }, ['zone_exists']);
      const app = (await call('POST', `/v1/zones/${zone}/applications`, { name: 'demo-agent' })) as {
        id: string;
        client_secret: string;
      };
      // The echo upstream is on loopback: the resource opts in to a private upstream, so the Gateway
      // forwards to it without turning on gateway.allowPrivateUpstreams for every resource.
      const resource = {
        name: 'Echo',
        scopes: ['read', 'write'],
        upstream_url: upstreamUrl,
        allow_private_upstream: true,
      };
      const created = await call(
        'POST',
        `/v1/zones/${zone}/resources`,
        { identifier: RESOURCE, ...resource },
        ['resource_exists'],
      );
      if (created.code === 'resource_exists') {
        // A rerun (perhaps on another upstream port) brings the existing resource up to date.
        await call('PUT', `/v1/zones/${zone}/resources/${encodeURIComponent(RESOURCE)}`, resource);
      }
      const current = (await call('GET', `/v1/zones/${zone}/data`, undefined, ['data_not_found'])) as {
        document?: { app_ids?: Record<string, boolean>; grants?: Record<string, unknown[]> };
      };
      const doc = current.document ?? {};
      const appId = app.id;
      await call('PUT', `/v1/zones/${zone}/data`, {
        document: {
          ...doc,
          app_ids: { ...doc.app_ids, [appId]: true },
          grants: {
            ...doc.grants,
            [appId]: [{ id: 'demo-echo', resource: 'resource://demo/*', scopes: ['read', 'write'] }],
          },
        },
      });
      const policy = (await call('POST', `/v1/zones/${zone}/policies`, {
        name: 'demo',
        source: DEMO_POLICY,
      })) as {
        version: number;
      };
      const set = (await call('POST', `/v1/zones/${zone}/policy-sets`, {
        modules: [{ name: 'demo', version: policy.version }],
      })) as { version: number };
      await call('POST', `/v1/zones/${zone}/policy-sets/${set.version}/activate`, {});

      // The STS picks the zone up on its next poll.
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const res = await fetch(`${sts}/.well-known/jwks.json?zone_id=${zone}`).catch(() => undefined);
        if (res?.status === 200) break;
        await new Promise((r) => setTimeout(r, 200));
      }

      const mint = [
        `curl -s ${sts}/oauth/2/token \\`,
        '  -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\',
        `  -d zone_id=${zone} -d application_id=${appId} \\`,
        `  -d client_secret=${app.client_secret} \\`,
        `  -d resource=${RESOURCE} -d scope=read`,
      ];
      process.stdout.write(
        [
          `Demo zone '${zone}' is ready: application ${appId}, resource ${RESOURCE} → ${upstreamUrl}.`,
          'The client secret below is shown once. Mint a mandate with:',
          '',
          mint.join('\n'),
          '',
          `Verify it against ${sts}/.well-known/jwks.json?zone_id=${zone}. Asking for scope=write is denied by the demo policy.`,
          '',
          'Call the echo upstream through the Gateway (a mandate is single use: mint a fresh one for each call):',
          '',
          `TOKEN=$(${mint.join('\n')} \\`,
          `  | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
          `curl -s ${gateway}/hello -H "Authorization: Bearer $TOKEN" -H "X-Caracal-Resource: ${RESOURCE}"`,
          '',
        ].join('\n'),
      );
      if (!opts.upstream) return;
      const server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              method: req.method,
              url: req.url,
              headers: req.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        });
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(Number(opts.upstreamPort), '127.0.0.1', resolve);
      });
      process.stdout.write(`Echo upstream listening on ${upstreamUrl}; Ctrl-C stops it.\n`);
    });
}
