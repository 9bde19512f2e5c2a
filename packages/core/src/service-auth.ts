import { createHash, createHmac } from 'node:crypto';
import type { Keyring } from './secrets.js';

/** The HMAC key of Gateway→STS calls; both services derive it from the same master key. */
export function gatewayServiceKey(keyring: Keyring): string {
  return keyring.digest('gateway-service', 'service-auth');
}

/**
 * Hex HMAC-SHA256 of one service call over `<METHOD>\n<path>\n<t>\n<nonce>\n<sha256 hex of the body>`:
 * the one definition the caller (signing) and the callee (verifying) share.
 */
export function signServiceCall(
  key: string,
  call: { method: string; path: string; t: string; nonce: string; body: Buffer | string },
): string {
  const bodyHash = createHash('sha256').update(call.body).digest('hex');
  return createHmac('sha256', key)
    .update(`${call.method}\n${call.path}\n${call.t}\n${call.nonce}\n${bodyHash}`)
    .digest('hex');
}
