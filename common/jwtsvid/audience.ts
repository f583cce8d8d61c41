import { invalidArgument } from '../errors';

/**
 * Limits on the `aud` of a JWT-SVID. The token carries every audience, and so
 * does the audit line of its issuance: without a cap, 5,000 audiences of 1,024
 * characters made a 5.1 MB token and a 5.1 MB log line. A JWT-SVID names the
 * few services it is meant for; 32 audiences of up to 1,024 characters, 8 KiB in
 * all, is far more than any real use.
 */
export const MAX_AUDIENCES = 32;
export const MAX_AUDIENCE_LENGTH = 1024;
export const MAX_AUDIENCE_TOTAL = 8192;

/**
 * Checks a requested audience list: a non-empty array of non-empty strings within
 * the limits above.
 * @param field the request field, for the message
 * @throws TesseraError INVALID_ARGUMENT saying which limit was broken
 */
export function checkAudience(aud: unknown, field = 'audience'): string[] {
  if (!Array.isArray(aud) || aud.length === 0 || !aud.every((a) => typeof a === 'string' && a !== '')) {
    throw invalidArgument(`${field} must be a non-empty array of non-empty strings`);
  }
  if (aud.length > MAX_AUDIENCES) throw invalidArgument(`${field} has ${aud.length} entries; at most ${MAX_AUDIENCES} are allowed`);
  let total = 0;
  for (const a of aud as string[]) {
    if (a.length > MAX_AUDIENCE_LENGTH) throw invalidArgument(`${field} has an entry of ${a.length} characters; at most ${MAX_AUDIENCE_LENGTH} are allowed`);
    total += Buffer.byteLength(a);
  }
  if (total > MAX_AUDIENCE_TOTAL) throw invalidArgument(`${field} is ${total} bytes in all; at most ${MAX_AUDIENCE_TOTAL} are allowed`);
  return aud as string[];
}
