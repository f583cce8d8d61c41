import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateKeyPair, randomBytes, sign, webcrypto, type KeyObject } from 'crypto';
import { promisify } from 'util';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import { notFound } from '../../common/errors';
import { JWTSVIDSigner } from '../../common/jwtsvid/sign';
import { parseSelector, selectorsSubsetOf, type Selector } from '../../common/selector';
import type { CachedX509SVID, Entitlement, WorkloadIdentitySource } from '../manager/identity-source';

/**
 * Test-only: real certificates and keys (@peculiar/x509 over WebCrypto, an
 * issuer independent of Tessera's CA) and an in-memory WorkloadIdentitySource
 * over them, for the Workload API tests.
 */
x509.cryptoProvider.set(webcrypto as never);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
type Pair = { publicKey: webcrypto.CryptoKey; privateKey: webcrypto.CryptoKey };

export interface Issued {
  der: Buffer;
  keys: Pair;
  subject: string;
}

/** A CA (self-signed without `issuer`) or an X.509-SVID leaf for `uri`. */
export async function issue(o: { ca: boolean; uri: string; subject?: string; issuer?: Issued }): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as Pair;
  const signer = o.issuer?.keys ?? keys;
  const subject = o.subject ?? (o.ca ? `O=Test CA, CN=${o.uri}` : 'O=SPIFFE');
  const F = x509.KeyUsageFlags;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01' + randomBytes(15).toString('hex'),
    subject,
    issuer: o.issuer?.subject ?? subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3_600_000),
    publicKey: keys.publicKey,
    signingKey: signer.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(o.ca, undefined, true),
      new x509.KeyUsagesExtension(o.ca ? F.keyCertSign | F.cRLSign : F.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.uri }], false),
    ],
  });
  return { der: Buffer.from(cert.rawData), keys, subject };
}

export const pkcs8Of = async (i: Issued): Promise<Buffer> => Buffer.from(await webcrypto.subtle.exportKey('pkcs8', i.keys.privateKey));

/** A JWT signing key (async-generated: on Node 20 a JWK export of a generateKeyPairSync key, as jose does, can hang the process) and its signer. */
export async function jwtKey(kid: string): Promise<{ signer: JWTSVIDSigner; publicKey: KeyObject }> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
  const signer = new JWTSVIDSigner({
    kid,
    alg: 'ES256',
    sign: (d) => sign('sha256', d, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    notAfter: Math.floor(Date.now() / 1000) + 3600,
  });
  return { signer, publicKey };
}

/** A trust domain: root, intermediate, JWT key, and its bundle. */
export interface TestTrustDomain {
  name: string;
  root: Issued;
  inter: Issued;
  jwt: { signer: JWTSVIDSigner; publicKey: KeyObject };
  bundle: SpiffeBundle;
}

export async function trustDomain(name: string): Promise<TestTrustDomain> {
  const root = await issue({ ca: true, uri: `spiffe://${name}` });
  const inter = await issue({ ca: true, uri: `spiffe://${name}`, subject: `O=Test CA, CN=${name} intermediate`, issuer: root });
  const jwt = await jwtKey(`${name}-jwt-1`);
  return { name, root, inter, jwt, bundle: { trustDomain: name, x509Authorities: [root.der], jwtAuthorities: [{ kid: jwt.signer.kid, publicKey: jwt.publicKey }] } };
}

export type TestSVID = CachedX509SVID & { leaf: Issued };

/** An X.509-SVID for `path` in `td`, issued by its intermediate (chain: leaf, intermediate). */
export async function svid(
  td: TestTrustDomain,
  path: string,
  o: { selectors: string[]; hint?: string; federatesWith?: string[]; createdAt?: number; entryId?: string; jwtAudiences?: string[] },
): Promise<TestSVID> {
  const spiffeId = `spiffe://${td.name}${path}`;
  const leaf = await issue({ ca: false, uri: spiffeId, issuer: td.inter });
  const now = Math.floor(Date.now() / 1000);
  return {
    entryId: o.entryId ?? `entry${path.replace(/\//g, '-')}`,
    spiffeId,
    chain: [leaf.der, td.inter.der],
    privateKeyPkcs8: await pkcs8Of(leaf),
    expiresAt: now + 3600,
    issuedAt: now - 60,
    hint: o.hint ?? '',
    selectors: o.selectors.map(parseSelector),
    federatesWith: o.federatesWith ?? [],
    jwtAudiences: o.jwtAudiences ?? [],
    entryCreatedAt: o.createdAt ?? 0,
    leaf,
  };
}

/** An in-memory identity source; tests change its fields, then call `changed()`. */
export class FakeIdentitySource implements WorkloadIdentitySource {
  isReady = true;
  svids: CachedX509SVID[] = [];
  /** entries that match callers but whose SVID is not held (not signed yet, or expired) */
  awaited: Array<Entitlement & { selectors: Selector[] }> = [];
  federated: SpiffeBundle[] = [];
  jwtFailure?: Error;
  private readonly listeners = new Set<() => void>();

  constructor(public own: SpiffeBundle, private readonly signer: JWTSVIDSigner) {}

  ready(): boolean {
    return this.isReady;
  }
  x509SVIDsFor(callerSelectors: Selector[]): CachedX509SVID[] {
    return this.svids.filter((s) => selectorsSubsetOf(s.selectors, callerSelectors)).sort((a, b) => a.entryCreatedAt - b.entryCreatedAt);
  }
  entitlementsFor(callerSelectors: Selector[]): Entitlement[] {
    return [...this.svids, ...this.awaited]
      .filter((s) => selectorsSubsetOf(s.selectors, callerSelectors))
      .map((s) => ({ entryId: s.entryId, spiffeId: s.spiffeId, federatesWith: s.federatesWith }));
  }
  bundle(): SpiffeBundle {
    return this.own;
  }
  federatedBundles(trustDomains: Iterable<string>): SpiffeBundle[] {
    const want = new Set(trustDomains);
    return this.federated.filter((b) => want.has(b.trustDomain));
  }
  async fetchJWTSVID(entryId: string, audience: string[]): Promise<{ spiffeId: string; token: string; expiresAt: number }> {
    if (this.jwtFailure) throw this.jwtFailure;
    const s = this.svids.find((e) => e.entryId === entryId);
    if (!s) throw notFound(`no entry ${entryId}`);
    return { spiffeId: s.spiffeId, ...this.signer.mint({ sub: s.spiffeId, aud: audience, ttlSeconds: 300 }) };
  }
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  get subscribers(): number {
    return this.listeners.size;
  }
  changed(): void {
    for (const l of [...this.listeners]) l();
  }
}
