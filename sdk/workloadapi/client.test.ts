import * as grpc from '@grpc/grpc-js';
import { fromGrpcError, parseEndpoint, WorkloadAPIClient } from './client';

describe('parseEndpoint (SPIFFE_ENDPOINT_SOCKET)', () => {
  it.each([
    ['unix:///tmp/agent.sock', { network: 'unix', path: '/tmp/agent.sock', target: 'unix:///tmp/agent.sock' }],
    ['unix:///run/tessera/public/api.sock', { network: 'unix', path: '/run/tessera/public/api.sock' }],
    ['UNIX:///tmp/a.sock', { network: 'unix', path: '/tmp/a.sock' }],
    ['unix:///tmp/a%20b.sock', { network: 'unix', path: '/tmp/a b.sock' }],
    ['tcp://127.0.0.1:8000', { network: 'tcp', host: '127.0.0.1', port: 8000, target: 'ipv4:127.0.0.1:8000' }],
    ['tcp://[::1]:8000', { network: 'tcp', host: '::1', port: 8000, target: 'ipv6:[::1]:8000' }],
    ['tcp://1.2.3.4:65535', { network: 'tcp', host: '1.2.3.4', port: 65535 }],
  ])('accepts %s', (addr, want) => {
    expect(parseEndpoint(addr)).toMatchObject(want);
  });

  it.each([
    ['', /empty/],
    ['/tmp/agent.sock', /unix:\/\/ or tcp:\/\//],
    ['http://127.0.0.1:80', /scheme "http"/],
    ['unix:opaque', /must not be opaque/],
    ['unix:/tmp/agent.sock', /must not be opaque/],
    ['unix://', /must include a socket path/],
    ['unix:///', /must include a socket path/],
    ['unix://foo', /must not have an authority/],
    ['unix://host/tmp/agent.sock', /must not have an authority/],
    ['unix://john:doe@/tmp/agent.sock', /user info/],
    ['unix:///tmp/agent.sock?x=1', /query/],
    ['unix:///tmp/agent.sock?', /query/],
    ['unix:///tmp/agent.sock#frag', /fragment/],
    ['unix:///tmp/a%zz.sock', /percent-escape/],
    ['unix:///tmp/a%00.sock', /nul byte/],
    ['unix:///tmp/a b.sock', /spaces or control/],
    ['tcp:opaque', /must not be opaque/],
    ['tcp://', /must include a host/],
    ['tcp://1.2.3.4:5?whatever', /query/],
    ['tcp://1.2.3.4:5#whatever', /fragment/],
    ['tcp://john:doe@1.2.3.4:5', /user info/],
    ['tcp://1.2.3.4:5/path', /must not include a path/],
    ['tcp://1.2.3.4:5/', /must not include a path/],
    ['tcp://foo:5', /ip address literal/],
    ['tcp://localhost:8000', /ip address literal/],
    ['tcp://::1:8000', /ip address literal/],
    ['tcp://[127.0.0.1]:8000', /ip address literal/],
    ['tcp://1.2.3.4', /must include a port/],
    ['tcp://1.2.3.4:', /must include a port/],
    ['tcp://1.2.3.4:0', /not 1-65535/],
    ['tcp://1.2.3.4:65536', /not 1-65535/],
    ['tcp://1.2.3.4:08000', /not 1-65535/],
  ])('rejects %j with INVALID_ARGUMENT', (addr, why) => {
    expect(() => parseEndpoint(addr)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(why) }));
  });
});

describe('WorkloadAPIClient', () => {
  it('takes a unix:// uri, a tcp:// uri or a plain absolute socket path', () => {
    for (const [endpoint, target] of [
      ['unix:///tmp/x.sock', 'unix:///tmp/x.sock'],
      ['/tmp/x.sock', 'unix:///tmp/x.sock'],
      ['tcp://127.0.0.1:1', 'ipv4:127.0.0.1:1'],
    ]) {
      const c = new WorkloadAPIClient(endpoint);
      expect(c.endpoint.target).toBe(target);
      c.close();
    }
    expect(() => new WorkloadAPIClient('tmp/x.sock')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('reports an unreachable agent as UNAVAILABLE', async () => {
    const c = new WorkloadAPIClient('unix:///nonexistent/tessera/api.sock', { timeoutMs: 2000 });
    try {
      await expect(c.fetchX509SVIDs()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      c.close();
    }
  });

  it('maps gRPC statuses to error codes of the same name', () => {
    const err = (code: grpc.status) => Object.assign(new Error('x'), { code, details: 'why', metadata: new grpc.Metadata() });
    expect(fromGrpcError(err(grpc.status.PERMISSION_DENIED))).toMatchObject({ code: 'PERMISSION_DENIED', message: 'workload api: why' });
    expect(fromGrpcError(err(grpc.status.INVALID_ARGUMENT)).code).toBe('INVALID_ARGUMENT');
    expect(fromGrpcError(err(grpc.status.UNIMPLEMENTED)).code).toBe('UNIMPLEMENTED');
    expect(fromGrpcError(err(grpc.status.DEADLINE_EXCEEDED)).code).toBe('UNAVAILABLE');
    expect(fromGrpcError(err(grpc.status.DATA_LOSS)).code).toBe('INTERNAL');
  });
});
