import { optionalCryptoAddon } from './optional-addon';

afterEach(() => delete process.env.TESSERA_NATIVE_ECDSA);

test('both crypto addons load, and TESSERA_NATIVE_ECDSA=0 turns them off', () => {
  expect(typeof optionalCryptoAddon('@tessera/ecdsa-verify', 'verify')).toBe('function');
  expect(typeof optionalCryptoAddon('@tessera/p256-keys', 'generateSigned')).toBe('function');
  process.env.TESSERA_NATIVE_ECDSA = '0';
  expect(optionalCryptoAddon('@tessera/ecdsa-verify', 'verify')).toBeUndefined();
  expect(optionalCryptoAddon('@tessera/p256-keys', 'generateSigned')).toBeUndefined();
});
