import { randomBytes, X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import type { Logger } from '../../common/log';
import { F, audit } from '../../common/log';
import type { Clock } from '../../common/clock';
import { systemClock } from '../../common/clock';
import { TesseraError, failedPrecondition, unavailable } from '../../common/errors';
import { bundlesEqual, decodeBundle, encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import { JWTSVIDSigner } from '../../common/jwtsvid/sign';
import type { CAJournalEntry, DataStore } from '../datastore/datastore';
import type { KeyManager, KeyType, ManagedKey } from '../keymanager/keymanager';
import { X509SVIDTemplate } from './x509-leaf-template';
import { createSelfSignedCA } from './ca-certificates';
import type { UpstreamAuthority } from './upstream-disk';

/** X.509-SVID backdating, as SPIRE: tolerates clock skew between issuer and relying parties. */
export const NOT_BEFORE_BACKDATE_SECONDS = 10;

export interface CAManagerConfig {
  trustDomain: string;
  caKeyType: KeyType;
  caTtl: number;
  organization: string;
  jwtKeyType: KeyType;
  jwtIssuer?: string;
  refreshHint: number;
}

export interface CAManagerDeps {
  config: CAManagerConfig;
  keyManager: KeyManager;
  store: DataStore;
  log: Logger;
  clock?: Clock;
  upstream?: UpstreamAuthority;
}

interface ActiveX509 {
  slot: CAJournalEntry;
  template: X509SVIDTemplate;
  /** certificates sent after the leaf: our CA cert when it is an intermediate, plus upstream intermediates */
  chainTail: Buffer[];
  notAfter: number;
}

interface ActiveJWT {
  slot: CAJournalEntry;
  signer: JWTSVIDSigner;
}

export interface MintedX509 {
  /** leaf first, then intermediates (never the root) */
  chain: Buffer[];
  serialHex: string;
  expiresAt: number;
}

const JWT_ALG: Record<KeyType, 'ES256' | 'ES384' | 'RS256'> = { 'ec-p256': 'ES256', 'ec-p384': 'ES384', 'rsa-2048': 'RS256' };

/**
 * Owns the trust domain's signing material: the active X.509 CA (self-signed root,
 * or an intermediate under an upstream authority) and the active JWT signing key,
 * both recorded in the datastore's CA journal and kept in the key manager. It
 * mints SVIDs on the fast paths and publishes the trust bundle (with a sequence
 * number that grows on every change). Key rotation slots (prepared → active →
 * retired) are journal states; issue #4 adds the scheduler on top.
 */
export class CAManager {
  private x509?: ActiveX509;
  private jwt?: ActiveJWT;
  private current?: SpiffeBundle;
  private readonly listeners = new Set<(b: SpiffeBundle) => void>();
  private readonly clock: Clock;
  private readonly log: Logger;

  private constructor(private readonly deps: CAManagerDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log;
  }

  /** Loads the active slots from the journal, creating keys and a CA where needed. */
  static async start(deps: CAManagerDeps): Promise<CAManager> {
    const m = new CAManager(deps);
    await m.loadOrCreateX509();
    await m.loadOrCreateJWT();
    await m.publishBundle();
    return m;
  }

  private nowS(): number {
    return Math.floor(this.clock.now().getTime() / 1000);
  }

  private async loadOrCreateX509(): Promise<void> {
    const now = this.nowS();
    const journal = await this.deps.store.listCAJournal('x509');
    for (const slot of journal.filter((s) => s.state === 'active')) {
      const key = await this.deps.keyManager.getKey(slot.keyId);
      // A CA past 5/6 of its life is replaced at start (issue #4 schedules this while running).
      const lifeLeft = slot.notAfter - now;
      const life = slot.notAfter - slot.notBefore;
      if (key && slot.certificateDer && lifeLeft > life / 6) {
        this.x509 = this.activateX509(slot, key);
        return;
      }
      await this.deps.store.putCAJournalEntry({ ...slot, state: 'retired' });
      this.log.warn({ [F.kid]: slot.kid, [F.reason]: key ? 'near expiry' : 'key missing from key manager' }, 'retiring x509 ca');
    }
    const slotId = `x509-${now}-${randomBytes(4).toString('hex')}`;
    const key = await this.deps.keyManager.generateKey(slotId, this.deps.config.caKeyType);
    const notBefore = now - NOT_BEFORE_BACKDATE_SECONDS;
    let notAfter = now + this.deps.config.caTtl;
    let certDer: Buffer;
    let upstreamChain: Buffer | null = null;
    if (this.deps.upstream) {
      const r = await this.deps.upstream.mintIntermediate({ key, trustDomain: this.deps.config.trustDomain, notBefore, notAfter });
      certDer = r.certificateDer;
      upstreamChain = Buffer.concat(r.upstreamChain);
    } else {
      certDer = await createSelfSignedCA({
        key,
        trustDomain: this.deps.config.trustDomain,
        notBefore: new Date(notBefore * 1000),
        notAfter: new Date(notAfter * 1000),
        organization: this.deps.config.organization,
      });
    }
    const cert = new X509Certificate(certDer);
    notAfter = Math.floor(new Date(cert.validTo).getTime() / 1000);
    const slot = await this.deps.store.putCAJournalEntry({
      id: slotId,
      kind: 'x509',
      keyId: key.id,
      state: 'active',
      certificateDer: certDer,
      upstreamChainDer: upstreamChain,
      publicJwk: null,
      kid: (cert as unknown as { subjectKeyIdentifier?: string }).subjectKeyIdentifier ?? slotId,
      notBefore,
      notAfter,
    });
    audit(this.log, 'x509_ca_created', { [F.kid]: slotId, not_after: notAfter, upstream: !!this.deps.upstream });
    this.x509 = this.activateX509(slot, key);
  }

  private activateX509(slot: CAJournalEntry, key: ManagedKey): ActiveX509 {
    const caCertDer = slot.certificateDer!;
    const template = new X509SVIDTemplate({ caCertDer, caKey: key });
    const chainTail: Buffer[] = [];
    if (this.deps.upstream) {
      chainTail.push(caCertDer);
      if (slot.upstreamChainDer && slot.upstreamChainDer.length) chainTail.push(...splitDer(slot.upstreamChainDer));
    }
    return { slot, template, chainTail, notAfter: slot.notAfter };
  }

  private async loadOrCreateJWT(): Promise<void> {
    const now = this.nowS();
    const journal = await this.deps.store.listCAJournal('jwt');
    for (const slot of journal.filter((s) => s.state === 'active')) {
      const key = await this.deps.keyManager.getKey(slot.keyId);
      const life = slot.notAfter - slot.notBefore;
      if (key && slot.notAfter - now > life / 6) {
        this.jwt = { slot, signer: this.makeSigner(slot, key) };
        return;
      }
      await this.deps.store.putCAJournalEntry({ ...slot, state: 'retired' });
    }
    const slotId = `jwt-${now}-${randomBytes(4).toString('hex')}`;
    const key = await this.deps.keyManager.generateKey(slotId, this.deps.config.jwtKeyType);
    // Re-import from DER before JWK export: see pitfalls (Node 20 deadlock on exporting
    // a key made by generateKeyPairSync); a DER-imported public key is always safe.
    const jwk = createPublicKey({ key: key.publicKeySpki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    const kid = randomBytes(16).toString('base64url');
    const slot = await this.deps.store.putCAJournalEntry({
      id: slotId,
      kind: 'jwt',
      keyId: key.id,
      state: 'active',
      certificateDer: null,
      upstreamChainDer: null,
      publicJwk: JSON.stringify(jwk),
      kid,
      notBefore: now,
      notAfter: now + this.deps.config.caTtl,
    });
    audit(this.log, 'jwt_key_created', { [F.kid]: kid, not_after: slot.notAfter });
    this.jwt = { slot, signer: this.makeSigner(slot, key) };
  }

  private makeSigner(slot: CAJournalEntry, key: ManagedKey): JWTSVIDSigner {
    return new JWTSVIDSigner({
      kid: slot.kid,
      alg: JWT_ALG[key.type],
      sign: (data: Buffer) => key.sign(data, 'ieee-p1363'),
      notAfter: slot.notAfter,
    });
  }

  /** Recomputes the own bundle from the journal; stores it with sequence+1 if it changed. */
  async publishBundle(): Promise<SpiffeBundle> {
    const td = this.deps.config.trustDomain;
    const now = this.nowS();
    const journal = await this.deps.store.listCAJournal();
    const live = journal.filter((s) => s.state !== 'revoked' && s.notAfter > now);
    const x509Authorities = this.deps.upstream
      ? this.deps.upstream.roots()
      : live.filter((s) => s.kind === 'x509' && s.certificateDer).map((s) => s.certificateDer!);
    const jwtAuthorities = live
      .filter((s) => s.kind === 'jwt' && s.publicJwk)
      .map((s) => ({ kid: s.kid, publicKey: createPublicKey({ key: JSON.parse(s.publicJwk!), format: 'jwk' }) as KeyObject }));
    const stored = await this.deps.store.fetchBundle(td);
    const prev = stored ? decodeBundle(td, stored.document) : undefined;
    const next: SpiffeBundle = {
      trustDomain: td,
      x509Authorities,
      jwtAuthorities,
      refreshHint: this.deps.config.refreshHint,
      sequence: prev?.sequence ?? 0,
    };
    if (!prev || !bundlesEqual({ ...prev, sequence: 0 }, { ...next, sequence: 0 })) {
      next.sequence = (prev?.sequence ?? 0) + 1;
      await this.deps.store.setBundle({ trustDomain: td, document: encodeBundle(next), sequence: next.sequence });
      audit(this.log, 'bundle_updated', { trust_domain: td, sequence: next.sequence });
      this.current = next;
      for (const l of this.listeners) l(next);
    } else {
      this.current = prev;
    }
    return this.current!;
  }

  /** The own trust domain's bundle as last published. */
  bundle(): SpiffeBundle {
    if (!this.current) throw unavailable('ca is not ready');
    return this.current;
  }

  onBundleChange(fn: (b: SpiffeBundle) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Unix seconds at which the active X.509 CA expires (metrics). */
  x509NotAfter(): number {
    return this.requireX509().notAfter;
  }

  jwtNotAfter(): number {
    if (!this.jwt) throw unavailable('jwt signing key is not ready');
    return this.jwt.slot.notAfter;
  }

  private requireX509(): ActiveX509 {
    if (!this.x509) throw unavailable('x509 ca is not ready');
    return this.x509;
  }

  /**
   * Mints an X.509-SVID for `spiffeId` over `publicKeySpki` (already verified by the
   * caller, e.g. from a CSR). notBefore = now − 10 s; notAfter = now + ttl, capped at
   * the CA's notAfter (never silently longer: `expiresAt` tells the caller what it got).
   */
  mintX509SVID(req: { spiffeId: string; publicKeySpki: Buffer; dnsNames?: string[]; ttl: number }): MintedX509 {
    const ca = this.requireX509();
    const now = this.nowS();
    const notAfter = Math.min(now + req.ttl, ca.notAfter);
    if (notAfter <= now) throw failedPrecondition('the x509 ca has expired; restart the server to rotate it');
    const { der, serialHex } = ca.template.mint({
      spiffeId: req.spiffeId,
      dnsNames: req.dnsNames,
      publicKeySpki: req.publicKeySpki,
      notBefore: new Date((now - NOT_BEFORE_BACKDATE_SECONDS) * 1000),
      notAfter: new Date(notAfter * 1000),
    });
    return { chain: [der, ...ca.chainTail], serialHex, expiresAt: notAfter };
  }

  /** Mints a JWT-SVID; `exp` is capped at the signing key's expiry. */
  mintJWTSVID(req: { spiffeId: string; audience: string[]; ttl: number }): { token: string; expiresAt: number } {
    if (!this.jwt) throw unavailable('jwt signing key is not ready');
    const r = this.jwt.signer.mint({
      sub: req.spiffeId,
      aud: req.audience,
      ttlSeconds: req.ttl,
      iss: this.deps.config.jwtIssuer,
      now: this.nowS(),
    });
    if (r.expiresAt <= this.nowS()) throw failedPrecondition('the jwt signing key has expired; restart the server to rotate it');
    return r;
  }

  /** For status output: the active slots, without key material. */
  describe(): { x509?: Omit<CAJournalEntry, 'certificateDer' | 'upstreamChainDer'>; jwt?: Omit<CAJournalEntry, 'certificateDer' | 'upstreamChainDer'> } {
    const strip = (s?: CAJournalEntry) => s && (({ certificateDer: _c, upstreamChainDer: _u, ...rest }) => rest)(s);
    return { x509: strip(this.x509?.slot), jwt: strip(this.jwt?.slot) };
  }
}

/** Splits concatenated DER certificates (each a SEQUENCE with a definite length). */
function splitDer(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf[off] !== 0x30) throw new TesseraError('INTERNAL', 'stored certificate chain is corrupt');
    let len = buf[off + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i]!;
      hdr = 2 + n;
    }
    out.push(buf.subarray(off, off + hdr + len));
    off += hdr + len;
  }
  return out;
}
