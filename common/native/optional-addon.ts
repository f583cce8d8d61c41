/**
 * The crypto addons (`@tessera/ecdsa-verify` on the server, `@tessera/p256-keys`
 * on the agent) are optional: each caller has a path through Node's crypto API
 * for when an addon is not built, and TESSERA_NATIVE_ECDSA=0 makes every caller
 * take that path (to compare, or to rule an addon out).
 *
 * @returns the addon's export `name`, or undefined when disabled or not loadable
 */
export function optionalCryptoAddon<T>(pkg: '@tessera/ecdsa-verify' | '@tessera/p256-keys', name: string): T | undefined {
  if (process.env.TESSERA_NATIVE_ECDSA === '0') return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(pkg) as Record<string, T>)[name];
  } catch {
    return undefined;
  }
}
