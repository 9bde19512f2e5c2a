import type { Migration } from '@caracal/store';

/** Control-plane state: zones and everything the STS loads for a zone, plus admin keys and the rollout freeze. */
export const controlPlaneMigration: Migration = {
  version: 2001,
  name: 'state_control_plane',
  sql: `
CREATE TABLE state_zones (
  id text PRIMARY KEY,
  name text NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  active_policy_set integer,
  policy_activated_at timestamptz,
  policy_activated_by text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE state_applications (
  id text PRIMARY KEY,
  zone_id text NOT NULL REFERENCES state_zones (id),
  name text NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'disabled')),
  secret_digest text NOT NULL,
  previous_secret_digest text,
  previous_secret_expires_at timestamptz,
  secret_rotated_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX state_applications_zone ON state_applications (zone_id, id);

CREATE TABLE state_providers (
  id text PRIMARY KEY,
  zone_id text NOT NULL REFERENCES state_zones (id),
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('static_api_key', 'oauth2_client_credentials', 'oauth2_refresh_token')),
  config jsonb NOT NULL,
  sealed_secret text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  UNIQUE (zone_id, id)
);
CREATE INDEX state_providers_zone ON state_providers (zone_id, id);

CREATE TABLE state_resources (
  zone_id text NOT NULL REFERENCES state_zones (id),
  identifier text NOT NULL,
  name text NOT NULL,
  scopes jsonb NOT NULL,
  upstream_url text NOT NULL,
  allowed_hosts jsonb NOT NULL,
  operations jsonb,
  provider_id text,
  max_mandate_ttl_seconds integer NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (zone_id, identifier),
  FOREIGN KEY (zone_id, provider_id) REFERENCES state_providers (zone_id, id)
);

CREATE TABLE state_policies (
  zone_id text NOT NULL REFERENCES state_zones (id),
  name text NOT NULL,
  version integer NOT NULL,
  content_hash text NOT NULL,
  source text NOT NULL,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  PRIMARY KEY (zone_id, name, version),
  UNIQUE (zone_id, name, content_hash)
);

CREATE TABLE state_policy_sets (
  zone_id text NOT NULL REFERENCES state_zones (id),
  version integer NOT NULL,
  content_hash text NOT NULL,
  modules jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  PRIMARY KEY (zone_id, version),
  UNIQUE (zone_id, content_hash)
);

CREATE TABLE state_data_documents (
  zone_id text NOT NULL REFERENCES state_zones (id),
  version integer NOT NULL,
  content_hash text NOT NULL,
  document jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  PRIMARY KEY (zone_id, version)
);

CREATE TABLE state_signing_keys (
  zone_id text NOT NULL REFERENCES state_zones (id),
  kid text NOT NULL,
  alg text NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),
  status text NOT NULL CHECK (status IN ('current', 'previous')),
  public_jwk jsonb NOT NULL,
  sealed_private_jwk text NOT NULL,
  created_at timestamptz NOT NULL,
  retire_after timestamptz,
  PRIMARY KEY (zone_id, kid)
);
CREATE UNIQUE INDEX state_signing_keys_current ON state_signing_keys (zone_id) WHERE status = 'current';

CREATE TABLE state_admin_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  scopes jsonb NOT NULL,
  digest text NOT NULL,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  revoked_at timestamptz
);

CREATE TABLE state_rollout_freeze (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  frozen boolean NOT NULL,
  reason text NOT NULL,
  updated_at timestamptz NOT NULL,
  updated_by text NOT NULL
);
INSERT INTO state_rollout_freeze (id, frozen, reason, updated_at, updated_by) VALUES (true, false, '', now(), 'migration');
`,
};
