/**
 * TLS settings shared by every listener and client: TLS 1.2 or 1.3 only, and on
 * TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305):
 * no CBC suites (Lucky13-style padding oracles), no SHA-1 MACs, no static RSA key
 * exchange (no forward secrecy). TLS 1.3 suites are all AEAD and are not affected
 * by this list. The RSA variants stay for https_web and OIDC certificates with RSA keys.
 */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

export const TLS12_AEAD_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The options every Tessera TLS endpoint and client passes to Node's tls. */
export const TLS_OPTIONS = { minVersion: TLS_MIN_VERSION, ciphers: TLS12_AEAD_CIPHERS } as const;
