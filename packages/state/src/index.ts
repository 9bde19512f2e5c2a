/**
 * @caracal/state — the control plane's tables, their SQL and the domain functions over them (usable
 * without HTTP), and the read model the STS loads per zone. Every write runs in one transaction with its
 * outbox event (owner `caracal_api`, stream `caracal.control`) and bumps the zone's version.
 *
 * Writes take `(q: Db | Tx, ctx: WriteContext, …, input: unknown)`: they validate `input` with the
 * schemas below (400 validation_failed), join the caller's transaction or open one, and throw
 * CaracalError with stable codes (zone_not_found, resource_exists, policy_compile_failed, rollout_frozen…).
 */
export {
  ADMIN_KEY_PURPOSE,
  type AdminKey,
  authenticateAdminKey,
  createAdminKey,
  getAdminKey,
  listAdminKeys,
  revokeAdminKey,
  scopesAllow,
} from './admin-keys.js';
export {
  type Application,
  type ApplicationWithSecret,
  authenticateApplication,
  CLIENT_SECRET_PURPOSE,
  type ClientSecretDigests,
  createApplication,
  DEFAULT_SECRET_OVERLAP_SECONDS,
  getApplication,
  listApplications,
  rotateApplicationSecret,
  updateApplication,
  verifyClientSecret,
} from './applications.js';
export {
  type Approval,
  consumeApproval,
  DEFAULT_APPROVAL_TTL_SECONDS,
  decideApproval,
  decideApprovalInput,
  getApproval,
  listApprovals,
  requestApproval,
} from './approvals.js';
export {
  type ChangeEvent,
  CONTROL_EVENT_TYPES,
  CONTROL_STREAM,
  type ControlEventType,
  type DbOrTx,
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  OUTBOX_OWNER,
  type Page,
  type PageRequest,
  type WriteContext,
} from './internal.js';
export { stateMigrations } from './migrations/index.js';
export {
  type Activation,
  activatePolicySet,
  compileErrors,
  createPolicySet,
  createPolicyVersion,
  type DataDocument,
  getDataDocument,
  getPolicySet,
  getPolicyVersion,
  getRolloutFreeze,
  listPolicySets,
  listPolicyVersions,
  type PolicyCompileError,
  type PolicySet,
  type PolicySetModule,
  type PolicyVersion,
  type PolicyVersionWithSource,
  putDataDocument,
  type RolloutFreeze,
  setRolloutFreeze,
} from './policies.js';
export {
  createProvider,
  deleteProvider,
  getProvider,
  listProviders,
  type ProviderConnection,
  providerSecretContext,
  updateProvider,
} from './providers.js';
export {
  createResource,
  DEFAULT_MANDATE_TTL_SECONDS,
  deleteResource,
  getResource,
  listResources,
  type Resource,
  type ResourceOperation,
  replaceResource,
} from './resources.js';
export * from './schemas.js';
export {
  loadZoneSnapshot,
  openProviderSecret,
  type SnapshotApplication,
  type SnapshotPolicy,
  type SnapshotProvider,
  type SnapshotSigningKey,
  type ZoneSnapshot,
} from './snapshot.js';
export {
  createZone,
  DEFAULT_KEY_RETIRE_AFTER_SECONDS,
  getZone,
  listSigningKeys,
  listZoneIds,
  listZones,
  rotateSigningKey,
  type SigningKeyInfo,
  signingKeyContext,
  type Zone,
  zoneVersions,
} from './zones.js';
