import { X509Certificate } from 'node:crypto';
import { invalidArgument } from '../errors';

/**
 * X.509 authority encodings other than bundle JSON: PEM files (configuration,
 * CLI output) and the Workload API's concatenated DER (no PEM, no separators).
 * Re-exported by bundle.ts; import them from there.
 */

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const STD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The X.509 authorities as PEM CERTIFICATE blocks, in order; `""` when there are none. */
export function bundleToPem(b: { x509Authorities: readonly Buffer[] }): string {
  return b.x509Authorities
    .map((der) => {
      const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
      return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
    })
    .join('');
}

/**
 * The DER certificates of the CERTIFICATE blocks of a PEM text, in order; `[]` if it
 * has none. Text between blocks is ignored (openssl writes `subject=` lines there).
 * @throws TesseraError INVALID_ARGUMENT for a block of another type (a key has no
 * place in a bundle), an unterminated block, bad base64 or a block that is not a certificate
 */
export function x509AuthoritiesFromPem(pem: string): Buffer[] {
  const out: Buffer[] = [];
  let blocks = 0;
  for (const m of pem.matchAll(PEM_BLOCK)) {
    blocks++;
    const what = `pem block ${blocks}`;
    if (m[1] !== 'CERTIFICATE') throw invalidArgument(`${what} is a ${m[1]}; only CERTIFICATE blocks are allowed`);
    const body = m[2].replace(/\s+/g, '');
    if (body.length % 4 !== 0 || !STD_BASE64.test(body)) throw invalidArgument(`${what} is not valid base64`);
    const der = Buffer.from(body, 'base64');
    try {
      new X509Certificate(der);
    } catch (e) {
      throw invalidArgument(`${what} is not an x.509 certificate`, e);
    }
    out.push(der);
  }
  // A block cut off at the end of a file would otherwise vanish without a word.
  const begins = pem.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== blocks) throw invalidArgument(`pem has ${begins - blocks} block(s) without a matching END line`);
  return out;
}

/** The certificates back to back, the Workload API's X.509 bundle and chain encoding. */
export function concatDer(bufs: readonly Uint8Array[]): Buffer {
  return Buffer.concat(bufs);
}

/**
 * Splits concatenated DER into its top-level SEQUENCEs (copies, in order) by
 * walking tag-length-value headers; `[]` for empty input. Does not check that each
 * part is a certificate.
 * @throws TesseraError INVALID_ARGUMENT if a part does not start with a SEQUENCE tag,
 * uses an indefinite or over-long length, or runs past the end of the data
 */
export function splitConcatenatedDer(buf: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < buf.length) {
    if (buf[i] !== 0x30) {
      throw invalidArgument(`der data has byte 0x${buf[i].toString(16).padStart(2, '0')} at offset ${i} where a SEQUENCE (0x30) must start`);
    }
    if (i + 2 > buf.length) throw invalidArgument(`der data is truncated at offset ${i}: no length byte`);
    let len = buf[i + 1];
    let header = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      // 0 is BER's indefinite length, which DER forbids; more than 4 bytes is no certificate.
      if (n === 0 || n > 4) throw invalidArgument(`der sequence at offset ${i} has an unsupported length encoding`);
      if (i + 2 + n > buf.length) throw invalidArgument(`der data is truncated at offset ${i}: length bytes missing`);
      len = 0;
      for (let j = 0; j < n; j++) len = len * 256 + buf[i + 2 + j];
      header += n;
    }
    const end = i + header + len;
    if (end > buf.length) {
      throw invalidArgument(`der sequence at offset ${i} is truncated: needs ${header + len} bytes, ${buf.length - i} left`);
    }
    out.push(Buffer.from(buf.subarray(i, end)));
    i = end;
  }
  return out;
}
