import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { checkX509CAProfile, checkX509SVIDProfile, validateX509SVIDChain, X509SVIDError, type X509SVIDRejectReason } from './validate';

// Fixtures come from @peculiar/x509 with real WebCrypto keys: an issuer
// independent of Tessera's own, so the validator is not tested against itself.
x509.cryptoProvider.set(webcrypto as never);
const subtle = webcrypto.subtle;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const F = x509.KeyUsageFlags;

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2027-01-01T00:00:00Z');
const NOW = new Date('2026-06-01T00:00:00Z');

interface Issued {
  der: Buffer;
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}
type CryptoKeyPair = { publicKey: unknown; privateKey: unknown };

interface IssueOpts {
  subject?: string;
  issuer?: Issued;
  ca?: boolean;
  pathLength?: number;
  usages?: number;
  kuCritical?: boolean;
  uris?: string[];
  dns?: string[];
  sanCritical?: boolean;
  eku?: string[];
  notBefore?: Date;
  notAfter?: Date;
  extra?: x509.Extension[];
  noBasicConstraints?: boolean;
}

async function issue(o: IssueOpts = {}): Promise<Issued> {
  const keys = (await subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const signer = o.issuer?.keys ?? keys;
  const ca = o.ca ?? false;
  const extensions: x509.Extension[] = [];
  if (!o.noBasicConstraints) extensions.push(new x509.BasicConstraintsExtension(ca, o.pathLength, true));
  extensions.push(new x509.KeyUsagesExtension(o.usages ?? (ca ? F.keyCertSign | F.cRLSign : F.digitalSignature), o.kuCritical ?? true));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey as never));
  const names = [...(o.uris ?? []).map((value) => ({ type: 'url' as const, value })), ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value }))];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, o.sanCritical ?? false));
  if (o.eku) extensions.push(new x509.ExtendedKeyUsageExtension(o.eku, false));
  extensions.push(...(o.extra ?? []));
  const subject = o.subject ?? (ca ? 'O=Test CA' : 'O=SPIFFE');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01' + randomBytes(15).toString('hex'),
    subject,
    issuer: o.issuer?.cert.subjectName ?? subject,
    notBefore: o.notBefore ?? T0,
    notAfter: o.notAfter ?? T1,
    publicKey: keys.publicKey as never,
    signingKey: signer.privateKey as never,
    signingAlgorithm: ALG,
    extensions,
  });
  return { der: Buffer.from(cert.rawData), cert, keys };
}

const leafOpts = (uri = 'spiffe://example.org/web'): IssueOpts => ({ uris: [uri], eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] });

let root: Issued, inter: Issued, otherRoot: Issued, leaf: Issued, leafViaInter: Issued;
const bundlesOf = (map: Record<string, Issued[]>) => (td: string) => map[td]?.map((c) => c.der);
let bundles: (td: string) => Buffer[] | undefined;

beforeAll(async () => {
  root = await issue({ subject: 'O=Test, CN=example.org root', ca: true, uris: ['spiffe://example.org'] });
  otherRoot = await issue({ subject: 'O=Test, CN=other.org root', ca: true, uris: ['spiffe://other.org'] });
  inter = await issue({ subject: 'O=Test, CN=example.org intermediate', ca: true, issuer: root, uris: ['spiffe://example.org'] });
  leaf = await issue({ ...leafOpts(), issuer: root });
  leafViaInter = await issue({ ...leafOpts('spiffe://example.org/ns/a/b'), issuer: inter, dns: ['a.example.org'] });
  bundles = bundlesOf({ 'example.org': [otherRoot, root], 'other.org': [otherRoot] });
});

/** Runs the validator and returns the rejection reason and message. */
function rejection(chain: Buffer[], b = bundles, now = NOW): { reason: X509SVIDRejectReason; message: string } {
  try {
    validateX509SVIDChain(chain, b, now);
  } catch (e) {
    expect(e).toBeInstanceOf(X509SVIDError);
    expect((e as X509SVIDError).code).toBe('INVALID_ARGUMENT');
    return { reason: (e as X509SVIDError).reason, message: (e as Error).message };
  }
  throw new Error('chain was accepted');
}

describe('validateX509SVIDChain', () => {
  it('accepts a leaf issued by a bundle root', () => {
    const r = validateX509SVIDChain([leaf.der], bundles, NOW);
    expect(r.spiffeId).toBe('spiffe://example.org/web');
    expect(r.leaf.raw.equals(leaf.der)).toBe(true);
  });

  it('accepts leaf -> intermediate -> root, with or without the root in the chain', () => {
    expect(validateX509SVIDChain([leafViaInter.der, inter.der], bundles, NOW).spiffeId).toBe('spiffe://example.org/ns/a/b');
    expect(validateX509SVIDChain([leafViaInter.der, inter.der, root.der], bundles, NOW).spiffeId).toBe('spiffe://example.org/ns/a/b');
  });

  it('never treats a leaf found in the bundle as its own anchor', () => {
    expect(rejection([leaf.der], bundlesOf({ 'example.org': [leaf] })).reason).toBe('untrusted-root');
  });

  it('defaults now to the current time', async () => {
    const t = Date.now();
    const liveRoot = await issue({ ca: true, notBefore: new Date(t - 3_600_000), notAfter: new Date(t + 3_600_000) });
    const live = await issue({ ...leafOpts(), issuer: liveRoot, notBefore: new Date(t - 60_000), notAfter: new Date(t + 60_000) });
    const gone = await issue({ ...leafOpts(), issuer: liveRoot, notBefore: new Date(t - 60_000), notAfter: new Date(t - 2_000) });
    const b = bundlesOf({ 'example.org': [liveRoot] });
    expect(validateX509SVIDChain([live.der], b).spiffeId).toBe('spiffe://example.org/web');
    expect(() => validateX509SVIDChain([gone.der], b)).toThrow(/leaf \(O=SPIFFE\) expired/);
  });

  const cases: Array<[string, () => Promise<{ chain: Buffer[]; bundles?: (td: string) => Buffer[] | undefined; now?: Date }>, X509SVIDRejectReason, RegExp]> = [
    ['an empty chain', async () => ({ chain: [] }), 'chain-empty', /chain is empty/],
    ['a chain of 17', async () => ({ chain: Array(17).fill(leaf.der) }), 'chain-too-long', /at most 16/],
    ['garbage', async () => ({ chain: [Buffer.from('nope')] }), 'malformed', /certificate 0 of the chain is not a valid DER certificate/],
    ['a bundle of another trust domain only', async () => ({ chain: [leaf.der], bundles: bundlesOf({ 'example.org': [otherRoot] }) }), 'untrusted-root', /not issued by any root in the bundle of trust domain example.org/],
    ['no bundle for the leaf trust domain', async () => ({ chain: [leaf.der], bundles: bundlesOf({ 'other.org': [root] }) }), 'no-bundle', /no trust bundle for trust domain example.org/],
    ['a leaf of other.org signed by example.org', async () => ({ chain: [(await issue({ ...leafOpts('spiffe://other.org/x'), issuer: root })).der] }), 'untrusted-root', /bundle of trust domain other.org/],
    ['an expired leaf', async () => ({ chain: [leaf.der], now: new Date(T1.getTime() + 1000) }), 'expired', /leaf \(O=SPIFFE\) expired at 2027-01-01T00:00:00.000Z/],
    ['a not-yet-valid leaf', async () => ({ chain: [leaf.der], now: new Date(T0.getTime() - 1000) }), 'not-yet-valid', /leaf \(O=SPIFFE\) is not valid until 2026-01-01/],
    ['an expired intermediate', async () => {
      const shortInter = await issue({ ca: true, issuer: root, notAfter: new Date('2026-03-01T00:00:00Z') });
      return { chain: [(await issue({ ...leafOpts(), issuer: shortInter })).der, shortInter.der] };
    }, 'expired', /intermediate 1 \(O=Test CA\) expired/],
    ['an expired root', async () => {
      const oldRoot = await issue({ ca: true, subject: 'O=Old root', notAfter: new Date('2026-03-01T00:00:00Z') });
      return { chain: [(await issue({ ...leafOpts(), issuer: oldRoot })).der], bundles: bundlesOf({ 'example.org': [oldRoot] }) };
    }, 'expired', /root \(O=Old root\) expired at 2026-03-01/],
    ['a CA leaf', async () => ({ chain: [(await issue({ ...leafOpts(), ca: true, usages: F.digitalSignature, issuer: root })).der] }), 'leaf-is-ca', /leaf certificate is a CA/],
    ['a leaf without SAN', async () => ({ chain: [(await issue({ issuer: root })).der] }), 'san-missing', /has no URI SAN/],
    ['a leaf with DNS SANs only', async () => ({ chain: [(await issue({ dns: ['a.example.org'], issuer: root })).der] }), 'san-missing', /has no URI SAN/],
    ['a leaf with two URI SANs', async () => ({ chain: [(await issue({ uris: ['spiffe://example.org/a', 'spiffe://example.org/b'], issuer: root })).der] }), 'san-multiple', /has 2 URI SANs/],
    ['a leaf with a non-SPIFFE URI', async () => ({ chain: [(await issue({ ...leafOpts('https://example.org/a'), issuer: root })).der] }), 'spiffe-id-invalid', /not a valid spiffe id: .*does not start with "spiffe:\/\/"/],
    ['a leaf with the trust domain ID', async () => ({ chain: [(await issue({ ...leafOpts('spiffe://example.org'), issuer: root })).der] }), 'spiffe-id-no-path', /has no path/],
    ['a keyCertSign leaf', async () => ({ chain: [(await issue({ ...leafOpts(), usages: F.digitalSignature | F.keyCertSign, issuer: root })).der] }), 'leaf-key-cert-sign', /keyCertSign/],
    ['a cRLSign leaf', async () => ({ chain: [(await issue({ ...leafOpts(), usages: F.digitalSignature | F.cRLSign, issuer: root })).der] }), 'leaf-crl-sign', /cRLSign/],
    ['a broken leaf signature under a root', async () => ({ chain: [flipLastByte(leaf.der)] }), 'signature-invalid', /signature of leaf .* does not verify with the key of any matching root/],
    ['a broken leaf signature under an intermediate', async () => ({ chain: [flipLastByte(leafViaInter.der), inter.der] }), 'signature-invalid', /signature of leaf .* does not verify with the key of intermediate 1/],
    ['a missing intermediate', async () => ({ chain: [leafViaInter.der] }), 'untrusted-root', /not issued by any root/],
    ['an unrelated intermediate', async () => ({ chain: [leaf.der, inter.der] }), 'issuer-mismatch', /was not issued by intermediate 1/],
    ['an intermediate that is not a CA', async () => {
      const fake = await issue({ issuer: root, ca: false, usages: F.keyCertSign | F.digitalSignature });
      return { chain: [(await issue({ ...leafOpts(), issuer: fake })).der, fake.der] };
    }, 'intermediate-not-ca', /intermediate 1 .* is not a CA/],
    ['an intermediate without keyCertSign', async () => {
      const weak = await issue({ issuer: root, ca: true, usages: F.cRLSign });
      return { chain: [(await issue({ ...leafOpts(), issuer: weak })).der, weak.der] };
    }, 'intermediate-no-key-cert-sign', /lacks the keyCertSign/],
    ['a root whose pathLenConstraint forbids the intermediate', async () => {
      const strictRoot = await issue({ ca: true, pathLength: 0, subject: 'O=Strict' });
      const i = await issue({ ca: true, issuer: strictRoot });
      return { chain: [(await issue({ ...leafOpts(), issuer: i })).der, i.der], bundles: bundlesOf({ 'example.org': [strictRoot] }) };
    }, 'path-length-exceeded', /allows 0 intermediate\(s\) below it, the chain has 1/],
    ['an unknown critical extension', async () => ({
      chain: [(await issue({ ...leafOpts(), issuer: root, extra: [new x509.Extension('1.2.3.4.5', true, new Uint8Array([5, 0]))] })).der],
    }), 'unsupported-critical-extension', /critical extension 1.2.3.4.5/],
  ];

  it.each(cases)('rejects %s', async (_name, make, reason, message) => {
    const c = await make();
    const r = rejection(c.chain, c.bundles ?? bundles, c.now ?? NOW);
    expect(r.reason).toBe(reason);
    expect(r.message).toMatch(/^invalid x509-svid: /);
    expect(r.message).toMatch(message);
  });

  it('gives different failures different messages', async () => {
    const reasonOf = new Map<string, X509SVIDRejectReason>();
    for (const [name, make, reason] of cases) {
      const c = await make();
      const { message } = rejection(c.chain, c.bundles ?? bundles, c.now ?? NOW);
      const seen = reasonOf.get(message);
      if (seen !== undefined && seen !== reason) throw new Error(`"${name}" shares its message with a ${seen} case: ${message}`);
      reasonOf.set(message, reason);
    }
    expect(new Set(reasonOf.values()).size).toBe(new Set(cases.map((c) => c[2])).size);
  });
});

function flipLastByte(d: Buffer): Buffer {
  const b = Buffer.from(d);
  b[b.length - 3] ^= 0x01; // inside the ECDSA signature's s value
  return b;
}

describe('checkX509SVIDProfile', () => {
  it('finds nothing wrong with a conforming leaf', () => {
    expect(checkX509SVIDProfile(leaf.der)).toEqual([]);
    expect(checkX509SVIDProfile(leafViaInter.der)).toEqual([]);
  });

  it('lists every violation', async () => {
    const bad = await issue({
      subject: '',
      uris: ['spiffe://example.org/a', 'spiffe://example.org/b'],
      ca: true,
      usages: F.keyCertSign | F.cRLSign,
      kuCritical: false,
      eku: ['1.3.6.1.5.5.7.3.1'],
      issuer: root,
    });
    expect(checkX509SVIDProfile(bad.der)).toEqual([
      'has 2 URI SANs, must have exactly one',
      'subject is empty, so subjectAltName must be critical',
      'basicConstraints cA is true, must be false',
      'keyUsage must be critical',
      'keyUsage lacks digitalSignature',
      'keyUsage has keyCertSign, forbidden in a leaf',
      'keyUsage has cRLSign, forbidden in a leaf',
      'extKeyUsage lacks clientAuth',
    ]);
  });

  it('flags a missing SAN, a root-path id, a bad id and a missing keyUsage', async () => {
    expect(checkX509SVIDProfile((await issue({ issuer: root })).der)).toEqual(['subjectAltName extension is missing']);
    expect(checkX509SVIDProfile((await issue({ ...leafOpts('spiffe://example.org'), issuer: root })).der)).toEqual([
      'URI SAN spiffe://example.org has no path; a leaf needs a workload id',
    ]);
    expect(checkX509SVIDProfile((await issue({ ...leafOpts('spiffe://EXAMPLE.org/x'), issuer: root })).der)[0]).toMatch(/^URI SAN is not a valid spiffe id: /);
    expect(checkX509SVIDProfile(root.der)).toContain('URI SAN spiffe://example.org has no path; a leaf needs a workload id');
  });

  it('accepts an empty subject with a critical SAN', async () => {
    expect(checkX509SVIDProfile((await issue({ ...leafOpts(), subject: '', sanCritical: true, issuer: root })).der)).toEqual([]);
  });

  it('reports unparseable input instead of throwing', () => {
    expect(checkX509SVIDProfile(Buffer.from('x'))[0]).toMatch(/^not a valid DER certificate: /);
    expect(checkX509CAProfile(Buffer.alloc(0))[0]).toMatch(/^not a valid DER certificate: /);
  });
});

describe('checkX509CAProfile', () => {
  it('finds nothing wrong with conforming CA certificates', () => {
    expect(checkX509CAProfile(root.der)).toEqual([]);
    expect(checkX509CAProfile(inter.der)).toEqual([]);
  });

  it('lists every violation', async () => {
    expect(checkX509CAProfile(leaf.der)).toEqual([
      'basicConstraints cA is false, must be true',
      'keyUsage lacks keyCertSign',
      'URI SAN spiffe://example.org/web has a path; a CA names only its trust domain',
    ]);
    const noBC = await issue({ noBasicConstraints: true, usages: F.keyCertSign, kuCritical: false, uris: ['spiffe://a.org', 'spiffe://b.org'] });
    expect(checkX509CAProfile(noBC.der)).toEqual(['basicConstraints extension is missing', 'keyUsage must be critical', 'has 2 URI SANs, at most one is allowed']);
    const nonCriticalBC = await issue({ noBasicConstraints: true, ca: true, extra: [new x509.BasicConstraintsExtension(true, undefined, false)] });
    expect(checkX509CAProfile(nonCriticalBC.der)).toEqual(['basicConstraints must be critical']);
  });
});
