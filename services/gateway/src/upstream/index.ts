export {
  type AddressCategory,
  type AddressClassification,
  type AddressDecision,
  type AddressPolicy,
  checkAddress,
  classifyAddress,
  isAddressAllowed,
} from './address-policy.js';
export { createUpstreamDispatcher, type UpstreamDispatcherOptions } from './dispatcher.js';
export {
  type ForwardRequest,
  type ForwardResponse,
  type ForwardTimeouts,
  forward,
  type InjectedCredential,
  mapUpstreamError,
  resolveTraceparent,
  rewriteLocation,
} from './forward.js';
export { checkQuery, joinUpstreamPath } from './paths.js';
