/** What {@link generateSigned} makes: `count` key pairs and one signature per key. */
export interface SignedKeys {
  /** the private scalars, 32 big-endian bytes each, concatenated (`count * 32` bytes) */
  privateKeys: Buffer;
  /** the public points as X || Y, 64 bytes each, concatenated (`count * 64` bytes; the 0x04 prefix left out) */
  publicKeys: Buffer;
  /** DER ECDSA-Sig-Value of key i over SHA-256(prefix || X_i || Y_i || suffix) */
  signatures: Buffer[];
}

/**
 * Makes `count` fresh EC P-256 key pairs on a libuv thread-pool thread and has each
 * sign, with ECDSA over SHA-256, the message `prefix || X || Y || suffix` built
 * around its own public point: a PKCS#10 CSR's certificationRequestInfo when the
 * caller passes the bytes around the SPKI's coordinates. Keys come from OpenSSL's
 * DRBG; the scalars are wiped from native memory once copied out.
 *
 * @param count   1 to 10,000
 * @param prefix  bytes before the 64 coordinate bytes (at most 4 KiB)
 * @param suffix  bytes after them (at most 4 KiB)
 * @throws TypeError on bad arguments; the promise rejects if OpenSSL fails
 */
export function generateSigned(count: number, prefix: Buffer, suffix: Buffer): Promise<SignedKeys>;
