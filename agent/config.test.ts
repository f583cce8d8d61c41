import { loadAgentConfig, DEFAULT_AGENT_SOCKET } from './config';

it('applies defaults and precedence flags > env', () => {
  const c = loadAgentConfig({ server: '127.0.0.1:9001' }, { TESSERA_SERVER_ADDRESS: '10.0.0.1:8081', TESSERA_TRUST_DOMAIN: 'spiffe://ex.org', TESSERA_JOIN_TOKEN: 't' });
  expect(c.serverAddress).toBe('127.0.0.1:9001');
  expect(c.trustDomain).toBe('ex.org');
  expect(c.joinToken).toBe('t');
  expect(c.socketPath).toBe(DEFAULT_AGENT_SOCKET);
  expect(c.healthBind).toEqual({ host: '127.0.0.1', port: 8083 });
  expect(c.reattestOnEviction).toBe(false);
  expect(Object.isFrozen(c)).toBe(true);
});

it.each([
  [{ trustDomain: 'ex.org' }, {}, /server_address/],
  [{ server: 'x:1' }, {}, /trust_domain/],
  [{ server: 'x:1', trustDomain: 'ex.org', trustBundleSha256: 'abc' }, {}, /trust_bundle_sha256: must be the SHA-256/],
  [{ server: 'x:1', trustDomain: 'ex.org', trustBundle: 'b.pem', trustBundleSha256: 'a'.repeat(64) }, {}, /not both/],
  [{ server: 'x:1', trustDomain: 'ex.org', socket: '/' + 'a'.repeat(120) }, {}, /socket_path/],
])('names the key in errors: %j', (flags, env, msg) => {
  expect(() => loadAgentConfig(flags, env)).toThrow(msg);
});

it('takes several server addresses (comma-separated in env or flags), in order; the first is where it starts', () => {
  const c = loadAgentConfig({ server: 'a.internal:8081, [::1]:8082' }, { TESSERA_TRUST_DOMAIN: 'ex.org', TESSERA_JOIN_TOKEN: 't' });
  expect(c.serverAddresses).toEqual(['a.internal:8081', '[::1]:8082']);
  expect(c.serverAddress).toBe('a.internal:8081');
  expect(() => loadAgentConfig({ server: 'a:1,nope' }, { TESSERA_TRUST_DOMAIN: 'ex.org', TESSERA_JOIN_TOKEN: 't' })).toThrow(/server_address/);
});
