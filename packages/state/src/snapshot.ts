import type { JsonWebKey } from 'node:crypto';
import type { Keyring } from '@caracal/core';
import type { MandateAlg } from '@caracal/mandate';
import type { Db } from '@caracal/store';
import { APP_COLUMNS, type ApplicationRow, type ClientSecretDigests, toDigests } from './applications.js';
import { getDataDocument, getPolicySet, type PolicySetModule, policySetSources } from './policies.js';
import { type ProviderRow, providerSecretContext } from './providers.js';
import { RESOURCE_COLUMNS, type Resource, toResource } from './resources.js';
import type { ProviderKind } from './schemas.js';
import { getZone, liveKeyRows, signingKeyContext, type Zone } from './zones.js';

export interface SnapshotApplication extends ClientSecretDigests {
  id: string;
  name: string;
}

/** A provider connection as the STS loads it: secret fields still sealed (open with `openProviderSecret`). */
export interface SnapshotProvider {
  id: string;
  name: string;
  kind: ProviderKind;
  config: Record<string, unknown>;
  sealed_secret: string;
}

export interface SnapshotPolicy {
  version: number;
  activated_at: string;
  modules: (PolicySetModule & { source: string })[];
  /** The zone's current data document (`data` for the policy), or {} when none was written. */
  data: Record<string, unknown>;
  data_version: number | null;
}

export interface SnapshotSigningKey {
  kid: string;
  alg: MandateAlg;
  public_jwk: JsonWebKey;
  /** Only for the current key: the opened private JWK. */
  private_jwk?: JsonWebKey;
  retire_after: string | null;
}

/** Everything the STS needs for one zone, read in one consistent transaction. */
export interface ZoneSnapshot {
  zone: Zone;
  /** The zone's version when read: compare with `zoneVersions` to detect staleness. */
  version: number;
  applications: SnapshotApplication[];
  resources: Resource[];
  providers: SnapshotProvider[];
  /** Null when no policy set was ever activated: the STS must deny everything for the zone. */
  policy: SnapshotPolicy | null;
  signing_keys: { current: SnapshotSigningKey; previous: SnapshotSigningKey[] };
  loaded_at: number;
}

/** Load one zone's read model; throws zone_not_found, or secret_unreadable when the key cannot be opened. */
export async function loadZoneSnapshot(
  db: Db,
  keyring: Keyring,
  zoneId: string,
  now: number = Date.now(),
): Promise<ZoneSnapshot> {
  return db.tx(async (tx) => {
    await tx.exec('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const zone = await getZone(tx, zoneId);
    const apps = await tx.query<ApplicationRow>(
      `SELECT ${APP_COLUMNS} FROM state_applications WHERE zone_id = $1 ORDER BY id`,
      [zoneId],
    );
    const resources = await tx.query<Parameters<typeof toResource>[0]>(
      `SELECT ${RESOURCE_COLUMNS} FROM state_resources WHERE zone_id = $1 ORDER BY identifier`,
      [zoneId],
    );
    const providers = await tx.query<ProviderRow>(
      'SELECT id, zone_id, name, kind, config, sealed_secret, created_at, updated_at FROM state_providers WHERE zone_id = $1 ORDER BY id',
      [zoneId],
    );
    let policy: SnapshotPolicy | null = null;
    if (zone.active_policy_set !== null) {
      const set = await getPolicySet(tx, zoneId, zone.active_policy_set);
      const sources = await policySetSources(tx, zoneId, set.modules);
      const data = await getDataDocument(tx, zoneId);
      policy = {
        version: set.version,
        activated_at: zone.policy_activated_at ?? '',
        modules: set.modules.map((m, i) => ({ ...m, source: sources[i]!.source })),
        data: data?.document ?? {},
        data_version: data?.version ?? null,
      };
    }
    const keys = await liveKeyRows(tx, zoneId, now);
    const currentRow = keys.find((k) => k.status === 'current');
    if (!currentRow) throw new Error(`zone ${zoneId} has no current signing key`);
    const current: SnapshotSigningKey = {
      kid: currentRow.kid,
      alg: currentRow.alg,
      public_jwk: currentRow.public_jwk,
      private_jwk: JSON.parse(
        keyring
          .open(currentRow.sealed_private_jwk, signingKeyContext(zoneId, currentRow.kid))
          .toString('utf8'),
      ),
      retire_after: null,
    };
    return {
      zone,
      version: zone.version,
      applications: apps.map((a) => ({ id: a.id, name: a.name, ...toDigests(a) })),
      resources: resources.map(toResource),
      providers: providers.map((p) => ({
        id: p.id,
        name: p.name,
        kind: p.kind,
        config: p.config,
        sealed_secret: p.sealed_secret,
      })),
      policy,
      signing_keys: {
        current,
        previous: keys
          .filter((k) => k.status === 'previous')
          .map((k) => ({
            kid: k.kid,
            alg: k.alg,
            public_jwk: k.public_jwk,
            retire_after: k.retire_after?.toISOString() ?? null,
          })),
      },
      loaded_at: now,
    };
  });
}

/** Open a snapshot provider's sealed secret fields (STS only, when it fetches a credential). */
export function openProviderSecret(
  keyring: Keyring,
  provider: { id: string; sealed_secret: string },
): Record<string, string> {
  return JSON.parse(
    keyring.open(provider.sealed_secret, providerSecretContext(provider.id)).toString('utf8'),
  );
}
