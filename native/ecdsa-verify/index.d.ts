/**
 * ECDSA signature verification against a raw uncompressed public point, using
 * the OpenSSL that Node links (no KeyObject import per key). Synchronous.
 *
 * @param curve  'P-256' or 'P-384'
 * @param point  0x04 || X || Y (65 bytes for P-256, 97 for P-384)
 * @param hash   digest applied to `data` before verification
 * @param data   the signed bytes
 * @param signature  DER-encoded ECDSA-Sig-Value; non-canonical DER is rejected
 * @returns true when the signature is valid for `data` under `point`
 * @throws TypeError for wrong argument types or an unknown curve/hash;
 *   RangeError when `point` is not an uncompressed point on the curve
 */
export function verify(
  curve: 'P-256' | 'P-384',
  point: Buffer,
  hash: 'sha256' | 'sha384' | 'sha512',
  data: Buffer,
  signature: Buffer,
): boolean;
