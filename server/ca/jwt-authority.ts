import { createPublicKey, randomBytes } from 'node:crypto';
import { JWTSVIDSigner } from '../../common/jwtsvid/sign';
import type { CAJournalEntry } from '../datastore/datastore';
import type { KeyType, ManagedKey } from '../keymanager/keymanager';
import type { NewSlot, SlotMaterial } from './authority-slots';

const JWT_ALG: Record<KeyType, 'ES256' | 'ES384' | 'RS256'> = { 'ec-p256': 'ES256', 'ec-p384': 'ES384', 'rsa-2048': 'RS256' };

/** A JWT signing key slot ready to sign. */
export interface JWTSigner {
  slot: CAJournalEntry;
  signer: JWTSVIDSigner;
}

/**
 * The JWT signing keys' material: a key with a random `kid`, published as a JWK
 * in the bundle, living as long as the CA (SPIRE's default). Its `kid` is in the
 * header of every JWT-SVID it signs: that is how agents find tokens of a tainted key.
 */
export function jwtMaterial(cfg: { jwtKeyType: KeyType; ttl: number }): SlotMaterial<JWTSigner> {
  return {
    kind: 'jwt',
    keyType: cfg.jwtKeyType,
    async create(key: ManagedKey, now: number): Promise<NewSlot> {
      // Re-import from DER before JWK export: on Node 20, JWK-exporting a key made by
      // generateKeyPairSync can hang the process; a DER-imported public key never does.
      const jwk = createPublicKey({ key: key.publicKeySpki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
      return {
        certificateDer: null,
        upstreamChainDer: null,
        publicJwk: JSON.stringify(jwk),
        kid: randomBytes(16).toString('base64url'),
        notBefore: now,
        notAfter: now + cfg.ttl,
      };
    },
    signer(slot: CAJournalEntry, key: ManagedKey): JWTSigner {
      return {
        slot,
        signer: new JWTSVIDSigner({
          kid: slot.kid,
          alg: JWT_ALG[key.type],
          sign: (data: Buffer) => key.sign(data, 'ieee-p1363'),
          notAfter: slot.notAfter,
        }),
      };
    },
    keyId: (slot) => slot.kid,
  };
}
