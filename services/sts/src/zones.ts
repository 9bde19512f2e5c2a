import type { Clock, Keyring, Logger } from '@caracal/core';
import {
  createKeyRing,
  createMandateSigner,
  createMandateVerifier,
  type KeyRing,
  type MandateSigner,
  type MandateVerifier,
  type SigningKey,
  verificationKeyFromJwk,
} from '@caracal/mandate';
import {
  loadZoneSnapshot,
  type Resource,
  type SnapshotApplication,
  type ZoneSnapshot,
  zoneVersions,
} from '@caracal/state';
import type { Db } from '@caracal/store';
import type { PolicyBundles } from './policy/bundles.js';

/** One zone as the mint path sees it: everything in memory, no database round trip. */
export interface ZoneEntry {
  snapshot: ZoneSnapshot;
  applications: Map<string, SnapshotApplication>;
  resources: Map<string, Resource>;
  keyRing: KeyRing;
  signer: MandateSigner;
  /** Verifies mandates this zone issued (session mandates presented as subject tokens). */
  verifier: MandateVerifier;
}

export interface ZoneDirectoryOptions {
  db: Db;
  keyring: Keyring;
  bundles: PolicyBundles;
  clock: Clock;
  logger: Logger;
  issuer: (zoneId: string) => string;
}

/**
 * Zone snapshots held in memory and refreshed by polling the per-zone version counter: a changed zone is
 * reloaded in one read-only transaction, an unchanged one is marked fresh. When the database is away the
 * last snapshots keep serving and their policy age grows (CaracalSTSPolicyBundleStale).
 */
export class ZoneDirectory {
  private readonly zones = new Map<string, ZoneEntry>();
  private lastSyncAt: number | undefined;
  private lastError: string | undefined;

  constructor(private readonly opts: ZoneDirectoryOptions) {}

  get(zoneId: string): ZoneEntry | undefined {
    return this.zones.get(zoneId);
  }

  /** Time of the last successful sync with the database (ms), for readiness. */
  syncedAt(): number | undefined {
    return this.lastSyncAt;
  }

  error(): string | undefined {
    return this.lastError;
  }

  size(): number {
    return this.zones.size;
  }

  /** Reload changed zones, drop deleted ones; throws when the database cannot be read. */
  async sync(): Promise<{ loaded: string[]; removed: string[] }> {
    const { db, keyring, bundles, clock, logger } = this.opts;
    let versions: Map<string, number>;
    try {
      versions = await zoneVersions(db);
    } catch (err) {
      this.lastError = (err as Error).message;
      throw err;
    }
    const loaded: string[] = [];
    const removed: string[] = [];
    for (const [zoneId, version] of versions) {
      const have = this.zones.get(zoneId);
      if (have && have.snapshot.version === version) {
        bundles.markSynced(zoneId);
        continue;
      }
      try {
        const snapshot = await loadZoneSnapshot(db, keyring, zoneId, clock.now());
        this.zones.set(zoneId, this.entry(snapshot, have));
        if (snapshot.policy) {
          bundles.apply({
            zoneId,
            version: `${snapshot.policy.version}.${snapshot.policy.data_version ?? 0}`,
            modules: Object.fromEntries(snapshot.policy.modules.map((m) => [moduleFile(m), m.source])),
            data: snapshot.policy.data,
            activatedAt: Date.parse(snapshot.policy.activated_at) || clock.now(),
          });
        } else bundles.remove(zoneId);
        loaded.push(zoneId);
      } catch (err) {
        logger.error(
          { zoneId, err: (err as Error).message },
          'zone snapshot failed to load; keeping the previous one',
        );
      }
    }
    for (const zoneId of [...this.zones.keys()]) {
      if (!versions.has(zoneId)) {
        this.zones.delete(zoneId);
        bundles.remove(zoneId);
        removed.push(zoneId);
      }
    }
    this.lastSyncAt = clock.now();
    this.lastError = undefined;
    return { loaded, removed };
  }

  private entry(snapshot: ZoneSnapshot, previous: ZoneEntry | undefined): ZoneEntry {
    const zoneId = snapshot.zone.id;
    const cur = snapshot.signing_keys.current;
    const current: SigningKey = {
      kid: cur.kid,
      alg: cur.alg,
      privateJwk: cur.private_jwk!,
      publicJwk: cur.public_jwk,
    };
    const keyRing = createKeyRing({
      zoneId,
      current,
      previous: snapshot.signing_keys.previous.map((k) => ({
        key: verificationKeyFromJwk(k.public_jwk),
        retireAfter: k.retire_after ? Date.parse(k.retire_after) : this.opts.clock.now() + 3_600_000,
      })),
      clock: this.opts.clock,
    });
    // Re-use the prepared signer while the key is unchanged: preparing one costs a key import.
    const signer =
      previous && previous.signer.kid === current.kid
        ? previous.signer
        : createMandateSigner(current, { issuer: this.opts.issuer(zoneId), clock: this.opts.clock });
    return {
      snapshot,
      applications: new Map(snapshot.applications.map((a) => [a.id, a])),
      resources: new Map(snapshot.resources.map((r) => [r.identifier, r])),
      keyRing,
      signer,
      verifier: createMandateVerifier({
        keys: keyRing,
        issuer: this.opts.issuer(zoneId),
        clock: this.opts.clock,
      }),
    };
  }
}

/** File name a module's compile errors point at: `<policy name>@<version>.rego`. */
function moduleFile(m: { name: string; version: number }): string {
  return `${m.name}@${m.version}.rego`;
}
