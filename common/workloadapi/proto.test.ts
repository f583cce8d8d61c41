import { existsSync } from 'fs';
import { join, resolve } from 'path';
import { workloadPackage, workloadProtoPath, workloadService } from './proto';

const repo = resolve(__dirname, '..', '..');

describe('workloadProtoPath', () => {
  it('finds the proto from the sources and from the compiled dist/ tree (tsc copies no .proto)', () => {
    const want = join(repo, 'common', 'workloadapi', 'workload.proto');
    expect(existsSync(want)).toBe(true);
    expect(workloadProtoPath()).toBe(want);
    expect(workloadProtoPath(join(repo, 'dist', 'common', 'workloadapi'))).toBe(want);
  });

  it('says where it looked when there is no proto above the directory', () => {
    expect(() => workloadProtoPath('/')).toThrow(/cannot find common\/workloadapi\/workload.proto in any parent of \//);
  });
});

describe('SpiffeWorkloadAPI service', () => {
  it('has the standard method paths (no proto package) and streaming kinds', () => {
    const svc = workloadService();
    const shape = Object.fromEntries(Object.entries(svc).map(([name, m]) => [name, [m.path, m.responseStream]]));
    expect(shape).toEqual({
      FetchX509SVID: ['/SpiffeWorkloadAPI/FetchX509SVID', true],
      FetchX509Bundles: ['/SpiffeWorkloadAPI/FetchX509Bundles', true],
      FetchJWTSVID: ['/SpiffeWorkloadAPI/FetchJWTSVID', false],
      FetchJWTBundles: ['/SpiffeWorkloadAPI/FetchJWTBundles', true],
      ValidateJWTSVID: ['/SpiffeWorkloadAPI/ValidateJWTSVID', false],
      FetchWITSVID: ['/SpiffeWorkloadAPI/FetchWITSVID', true],
      FetchWITBundles: ['/SpiffeWorkloadAPI/FetchWITBundles', true],
    });
    for (const m of Object.values(svc)) expect(m.requestStream).toBe(false);
  });
});

interface FieldDescriptor { name: string; number: number; label: string; type: string; typeName: string }
interface MessageDescriptor { field: FieldDescriptor[]; nestedType: (MessageDescriptor & { name: string; options?: { mapEntry?: boolean } })[] }

/** `<number> [repeated ]<type> <name>`, maps as `map<k, v>`, as in the reference's field table. */
function fieldsOf(message: string): string[] {
  const t = (workloadPackage()[message] as unknown as { type: MessageDescriptor }).type;
  const scalar = (f: FieldDescriptor) => (f.type === 'TYPE_MESSAGE' ? f.typeName : f.type.replace('TYPE_', '').toLowerCase());
  return t.field.map((f) => {
    const entry = t.nestedType.find((n) => n.name === f.typeName && n.options?.mapEntry);
    if (entry) return `${f.number} map<${scalar(entry.field[0])}, ${scalar(entry.field[1])}> ${f.name}`;
    return `${f.number} ${f.label === 'LABEL_REPEATED' ? 'repeated ' : ''}${scalar(f)} ${f.name}`;
  });
}

describe('workload.proto messages', () => {
  // The wire contract of the SPIFFE Workload API (workload.proto in the SPIFFE spec): names and numbers must never change.
  it.each([
    ['X509SVIDRequest', []],
    ['X509SVIDResponse', ['1 repeated X509SVID svids', '2 repeated bytes crl', '3 map<string, bytes> federated_bundles']],
    ['X509SVID', ['1 string spiffe_id', '2 bytes x509_svid', '3 bytes x509_svid_key', '4 bytes bundle', '5 string hint']],
    ['X509BundlesRequest', []],
    ['X509BundlesResponse', ['1 repeated bytes crl', '2 map<string, bytes> bundles']],
    ['JWTSVIDRequest', ['1 repeated string audience', '2 string spiffe_id']],
    ['JWTSVIDResponse', ['1 repeated JWTSVID svids']],
    ['JWTSVID', ['1 string spiffe_id', '2 string svid', '3 string hint']],
    ['JWTBundlesRequest', []],
    ['JWTBundlesResponse', ['1 map<string, bytes> bundles']],
    ['ValidateJWTSVIDRequest', ['1 string audience', '2 string svid']],
    ['ValidateJWTSVIDResponse', ['1 string spiffe_id', '2 google.protobuf.Struct claims']],
    ['WITSVIDRequest', ['1 string spiffe_id']],
    ['WITSVIDResponse', ['1 repeated WITSVID svids']],
    ['WITSVID', ['1 string spiffe_id', '2 string wit_svid', '3 string wit_svid_key', '4 string hint']],
    ['WITBundlesRequest', []],
    ['WITBundlesResponse', ['1 map<string, string> bundles']],
  ])('%s has the standard fields', (message, fields) => {
    expect(fieldsOf(message)).toEqual(fields);
  });
});
