/**
 * x509pop challenge format, shared by the server's attestor and the agent: the
 * agent signs this prefix followed by the server's nonce (SHA-256), so the
 * signature cannot be replayed as anything else.
 */
export const X509POP_CONTEXT = Buffer.from('tessera x509pop v1\0');
