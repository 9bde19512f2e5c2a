import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { CaracalError } from './errors.js';

/**
 * Keys derived from the deployment's master key (CARACAL_MASTER_KEY). Each use gets its own HKDF subkey,
 * so a leak of one derived key exposes nothing else. Previous master keys keep old data readable during rotation.
 */
export interface Keyring {
  /** Encrypt a secret for storage (AES-256-GCM); the result names the master key it was sealed under. */
  seal(plaintext: string | Buffer, context: string): string;
  /** Decrypt what seal() produced with the same context; throws `secret_unreadable` on any mismatch. */
  open(sealed: string, context: string): Buffer;
  /** HMAC-SHA-256 of a high-entropy secret (client secrets), under the current key. */
  digest(secret: string, purpose: string): string;
  /** Timing-safe check of a secret against digests made by the current or a previous key. */
  verifyDigest(secret: string, digest: string, purpose: string): boolean;
}

const SEALED = /^v1\.([0-9a-f]{8})\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)$/;

interface Master {
  id: string;
  key: Buffer;
}

function subkey(master: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `caracal:${info}`, 32));
}

/** Build the keyring from the current master key and any previous ones (each ≥ 32 characters). */
export function createKeyring(masterKey: string, previous: string[] = []): Keyring {
  const masters: Master[] = [masterKey, ...previous].map((k) => {
    const key = Buffer.from(k, 'utf8');
    return { id: createHash('sha256').update(key).digest('hex').slice(0, 8), key };
  });
  const current = masters[0]!;
  const byId = new Map(masters.map((m) => [m.id, m]));
  // HKDF per call would cost more than the HMAC it keys; derive each subkey once.
  const subkeys = new Map<string, Buffer>();
  const derived = (m: Master, info: string): Buffer => {
    const k = `${m.id}\u0000${info}`;
    let key = subkeys.get(k);
    if (!key) {
      key = subkey(m.key, info);
      subkeys.set(k, key);
    }
    return key;
  };

  const digestWith = (m: Master, secret: string, purpose: string) =>
    createHmac('sha256', derived(m, `digest:${purpose}`))
      .update(secret, 'utf8')
      .digest('base64url');

  return {
    seal(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', derived(current, 'seal'), iv);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      const tag = cipher.getAuthTag();
      return `v1.${current.id}.${iv.toString('base64url')}.${body.toString('base64url')}.${tag.toString('base64url')}`;
    },
    open(sealed, context) {
      const m = SEALED.exec(sealed);
      const master = m ? byId.get(m[1]!) : undefined;
      if (!m || !master) {
        throw new CaracalError(
          'secret_unreadable',
          500,
          'A stored secret cannot be read with the configured master keys.',
        );
      }
      try {
        const decipher = createDecipheriv(
          'aes-256-gcm',
          derived(master, 'seal'),
          Buffer.from(m[2]!, 'base64url'),
        );
        decipher.setAAD(Buffer.from(context, 'utf8'));
        decipher.setAuthTag(Buffer.from(m[4]!, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(m[3]!, 'base64url')), decipher.final()]);
      } catch {
        throw new CaracalError('secret_unreadable', 500, 'A stored secret failed its integrity check.');
      }
    },
    digest: (secret, purpose) => `${current.id}.${digestWith(current, secret, purpose)}`,
    verifyDigest(secret, digest, purpose) {
      const dot = digest.indexOf('.');
      const master = byId.get(digest.slice(0, dot));
      if (!master) return false;
      const expected = Buffer.from(digestWith(master, secret, purpose));
      const given = Buffer.from(digest.slice(dot + 1));
      return expected.length === given.length && timingSafeEqual(expected, given);
    },
  };
}
