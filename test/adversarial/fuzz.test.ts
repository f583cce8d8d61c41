import { X509Certificate, generateKeyPair, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { TesseraError } from '../../common/errors';
import { parseSpiffeId } from '../../common/spiffeid/spiffe-id';
import { parseSelector } from '../../common/selector';
import { parseAndVerifyCSR, createCSR } from '../../common/x509svid/csr';
import { validateJWTSVID } from '../../common/jwtsvid/validate';
import { JWTSVIDSigner } from '../../common/jwtsvid/sign';
import { checkAudience } from '../../common/jwtsvid/audience';
import { validateX509SVIDChain } from '../../common/x509svid/validate';
import { decodeBundle } from '../../common/bundle/bundle';
import { parseNewEntry } from '../../server/registration/entry-input';
import { X509PopAttestor } from '../../server/attestor/node/x509pop';
import { loadAgentConfig, AGENT_ENV } from '../../agent/config';
import { loadServerConfig, SERVER_ENV } from '../../server/config';
import { loadHelperConfig } from '../../helper/config';
import { makeTestCA, makeTestLeaf } from '../helpers/test-pki';
import { figure } from '../helpers/figures';

/**
 * Fuzzing every parser that takes outside input, with fast-check: each must
 * either answer or refuse with a typed TesseraError (mapped to a status at the
 * edge), never crash with anything else and never hang. `npm test` runs the quick
 * mode (2,000 inputs a parser); `npm run test:adversarial` the full one (100,000).
 * Inputs mix random data with mutations of valid values (a CSR, a certificate, a
 * JWT-SVID, a bundle), which reach deeper than noise. Figures (printed at the
 * end of the run by test/adversarial/teardown.ts):
 *   adversarial fuzz_<parser>_inputs N / _crashes 0 / _hangs 0 / _max_ms T
 */
const FULL = process.env.TESSERA_ADVERSARIAL === 'full';
const RUNS = FULL ? 100_000 : 2_000;
const HANG_MS = 1000;
jest.setTimeout(FULL ? 1_800_000 : 180_000);

interface Tally {
  inputs: number;
  crashes: string[];
  hangs: number;
  maxMs: number;
}

async function fuzz<T>(name: string, arb: fc.Arbitrary<T>, target: (input: T) => unknown | Promise<unknown>): Promise<void> {
  const t: Tally = { inputs: 0, crashes: [], hangs: 0, maxMs: 0 };
  await fc.assert(
    fc.asyncProperty(arb, async (input) => {
      t.inputs++;
      const start = performance.now();
      try {
        await target(input);
      } catch (e) {
        if (!(e instanceof TesseraError)) t.crashes.push(`${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`.slice(0, 300));
      }
      const ms = performance.now() - start;
      t.maxMs = Math.max(t.maxMs, ms);
      if (ms > HANG_MS) t.hangs++;
      return true;
    }),
    { numRuns: RUNS, seed: 20261202 },
  );
  figure(`fuzz_${name}_inputs`, t.inputs);
  figure(`fuzz_${name}_crashes`, t.crashes.length);
  figure(`fuzz_${name}_hangs`, t.hangs);
  figure(`fuzz_${name}_max_ms`, Math.round(t.maxMs * 10) / 10, 'max');
  expect({ name, crashes: [...new Set(t.crashes)].slice(0, 5), hangs: t.hangs }).toEqual({ name, crashes: [], hangs: 0 });
}

/** Flips, drops or inserts bytes of a valid value. */
const mutated = (valid: Buffer) =>
  fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'drop', 'insert')), { minLength: 1, maxLength: 8 }).map((edits) => {
    let b = Buffer.from(valid);
    for (const [at, v, kind] of edits) {
      const i = Math.min(at, b.length - 1);
      if (kind === 'flip') b[i] = v;
      else if (kind === 'drop') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
      else b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
    }
    return b;
  });
const text = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 100 }));

let dir: string;
let validCSR: Buffer;
let leafDer: Buffer;
let svidDer: Buffer;
let spiffeCaDer: Buffer;
let rootCert: X509Certificate;
let validToken: string;
// async generation: on Node 20 a JWK export (the bundle target below) of a generateKeyPairSync key can hang the process
let jwtKey: { privateKey: KeyObject; publicKey: KeyObject };

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fuzz-'));
  const gen = promisify(generateKeyPair);
  jwtKey = await gen('ec', { namedCurve: 'P-256' });
  const k = await gen('ec', { namedCurve: 'P-256' });
  validCSR = await createCSR(k.privateKey, k.publicKey);
  const ca = await makeTestCA(dir, 'ca');
  const leaf = await makeTestLeaf(dir, 'node', ca, { dns: ['node.example.org'] });
  leafDer = leaf.der;
  const sca = await makeTestCA(dir, 'sca', { spiffeTrustDomain: 'example.org' });
  spiffeCaDer = sca.der;
  svidDer = (await makeTestLeaf(dir, 'svid', sca, { uri: 'spiffe://example.org/w' })).der;
  rootCert = new X509Certificate(ca.der);
  const signer = new JWTSVIDSigner({ kid: 'k1', alg: 'ES256', sign: (d) => cryptoSign('sha256', d, { key: jwtKey.privateKey, dsaEncoding: 'ieee-p1363' }), notAfter: Math.floor(Date.now() / 1000) + 3600 });
  validToken = signer.mint({ sub: 'spiffe://example.org/w', aud: ['svc'], ttlSeconds: 300 }).token;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('SPIFFE IDs', () => fuzz('spiffe_id', fc.oneof(text, text.map((s) => `spiffe://${s}`), fc.webUrl()), (s) => parseSpiffeId(s)));

it('selectors', () => fuzz('selector', fc.oneof(text, fc.tuple(text, text).map(([a, b]) => `${a}:${b}`)), (s) => parseSelector(s)));

it('CSR DER', () => fuzz('csr_der', fc.oneof(fc.uint8Array({ maxLength: 1024 }).map((a) => Buffer.from(a)), mutated(validCSR)), (b) => parseAndVerifyCSR(b)));

it('x509pop chains', () => {
  const attestor = new X509PopAttestor([rootCert], 'example.org', () => new Date());
  const cert = fc.oneof(mutated(leafDer).map((b) => b.toString('base64')), text, fc.constant(leafDer.toString('base64')));
  return fuzz('x509pop_chain', fc.oneof(fc.anything(), fc.record({ certificates: fc.array(cert, { maxLength: 4 }) })), (p) => attestor.begin(p));
});

it('X.509-SVID chains (what SDK servers and clients verify peers with)', () =>
  fuzz('x509svid_chain', fc.array(fc.oneof(mutated(svidDer), fc.constant(svidDer), fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a))), { minLength: 1, maxLength: 3 }), (chain) =>
    validateX509SVIDChain(chain, (td) => (td === 'example.org' ? [spiffeCaDer] : undefined)),
  ));

it('JWT-SVIDs', () => {
  const parts = validToken.split('.');
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = fc.oneof(
    text,
    mutated(Buffer.from(validToken)).map((b) => b.toString('latin1')),
    fc.tuple(fc.json(), fc.json()).map(([h, p]) => `${b64(JSON.parse(h))}.${b64(JSON.parse(p))}.${parts[2]}`),
    fc.record({ alg: fc.constantFrom('none', 'HS256', 'ES256', 'RS256', 'EdDSA'), kid: fc.oneof(fc.constant('k1'), text), typ: fc.constantFrom('JWT', 'jwt', undefined) }).map((h) => `${b64(h)}.${parts[1]}.${parts[2]}`),
  );
  return fuzz('jwt', token, (t) => validateJWTSVID(t, { audience: 'svc', keysFor: (td) => (td === 'example.org' ? [{ kid: 'k1', publicKey: jwtKey.publicKey }] : undefined) }));
});

it('admin-API entry JSON', () => {
  const entryish = fc.record(
    { spiffe_id: fc.oneof(text, fc.constant('spiffe://example.org/w')), parent_id: fc.oneof(text, fc.constant('spiffe://example.org/n')), selectors: fc.oneof(fc.array(text), fc.anything()), x509_svid_ttl: fc.anything(), dns_names: fc.oneof(fc.array(text), fc.anything()), jwt_audiences: fc.anything(), hint: fc.anything() },
    { requiredKeys: [] },
  );
  return fuzz('admin_api_entry_json', fc.oneof(fc.anything(), fc.json().map((j) => JSON.parse(j) as unknown), entryish), (b) => parseNewEntry(b, 'example.org'));
});

it('agent-API JSON (audiences)', () => fuzz('agent_api_audience_json', fc.oneof(fc.anything(), fc.array(text, { maxLength: 40 })), (a) => checkAudience(a)));

it('bundle JSON', () => {
  const good = JSON.stringify({ keys: [{ ...jwtKey.publicKey.export({ format: 'jwk' }), use: 'jwt-svid', kid: 'k1' }], spiffe_sequence: 1 });
  return fuzz('bundle_json', fc.oneof(fc.json(), text, mutated(Buffer.from(good)).map((b) => b.toString('utf8')), fc.anything().map((a) => a as object)), (j) => decodeBundle('example.org', j as string));
});

it('config files and environment', () => {
  let n = 0;
  const env = (mapping: Record<string, string>) => fc.dictionary(fc.constantFrom(...Object.keys(mapping)), text, { maxKeys: 6 });
  return fuzz('config', fc.tuple(fc.oneof(fc.json(), text), env(AGENT_ENV), env(SERVER_ENV)), ([file, agentEnv, serverEnv]) => {
    const f = path.join(dir, `c${n++ % 4}.json`);
    writeFileSync(f, file);
    const errors: unknown[] = [];
    for (const load of [() => loadAgentConfig({ config: f }, agentEnv), () => loadServerConfig({ config: f }, serverEnv), () => loadHelperConfig({ config: f }, {})]) {
      try {
        load();
      } catch (e) {
        errors.push(e);
      }
    }
    const untyped = errors.find((e) => !(e instanceof TesseraError));
    if (untyped) throw untyped;
  });
});
