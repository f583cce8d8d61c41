import { invalidArgument } from '../errors';

/**
 * A minimal DER writer and a strict DER reader.
 *
 * Why hand-written: issuing X.509-SVIDs is the server's hot path, and no
 * maintained JS library encodes a certificate from a pre-encoded template with
 * only a few spliced fields at anything near the signing rate (the
 * @peculiar/x509 generator runs at ~1 % of `crypto.sign`, measured on
 * Node 20: 160–230 leaf certificates/s against ~17,600 P-256 signatures/s).
 * This module only knows tag-length-value; it has no notion
 * of schemas. Anything structural that is not on the hot path (CA certificates,
 * CSR creation, profile checks) uses @peculiar/asn1-schema / @peculiar/x509.
 *
 * Only the forms X.509 and PKCS#10 need are supported: low tag numbers
 * (< 31), definite lengths up to 2^32-1.
 */

/** Universal tags used by X.509 and PKCS#10. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------- writer

/** The DER length octets for a value of `len` bytes (short form below 128, else minimal long form). */
export function encodeLength(len: number): Buffer {
  if (!Number.isInteger(len) || len < 0 || len > 0xffffffff) throw invalidArgument(`der: cannot encode length ${len}`);
  if (len < 0x80) return Buffer.from([len]);
  if (len <= 0xff) return Buffer.from([0x81, len]);
  if (len <= 0xffff) return Buffer.from([0x82, len >> 8, len & 0xff]);
  if (len <= 0xffffff) return Buffer.from([0x83, len >> 16, (len >> 8) & 0xff, len & 0xff]);
  return Buffer.from([0x84, len >>> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]);
}

/** One TLV: `tag` (a full identifier octet, e.g. 0x30 or 0xa3) around the concatenated `content`. */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  let len = 0;
  for (const c of content) len += c.length;
  const lenBytes = encodeLength(len);
  const out = Buffer.allocUnsafe(1 + lenBytes.length + len);
  out[0] = tag;
  lenBytes.copy(out, 1);
  let o = 1 + lenBytes.length;
  for (const c of content) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Identifier + length octets for a value of `len` bytes. */
export function header(tag: number, len: number): Buffer {
  const l = encodeLength(len);
  const out = Buffer.allocUnsafe(1 + l.length);
  out[0] = tag;
  l.copy(out, 1);
  return out;
}

/**
 * Builds nested DER from pieces without copying each level: push the content,
 * then `wrap` puts a TLV header in front of everything pushed since a `mark`.
 * Wrap inner marks before outer ones. One copy happens, in `toBuffer`.
 *
 * @example
 * const b = new DerBuilder();
 * const m = b.mark();
 * b.push(integer(1), NULL);
 * b.wrap(TAG.SEQUENCE, m); // 30 05 02 01 01 05 00
 */
export class DerBuilder {
  private readonly parts: Uint8Array[] = [];
  length = 0;

  push(...bufs: Uint8Array[]): this {
    for (const b of bufs) {
      this.parts.push(b);
      this.length += b.length;
    }
    return this;
  }

  mark(): readonly [index: number, length: number] {
    return [this.parts.length, this.length];
  }

  wrap(tag: number, m: readonly [number, number]): this {
    const h = header(tag, this.length - m[1]);
    this.parts.splice(m[0], 0, h);
    this.length += h.length;
    return this;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

export const sequence = (...parts: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...parts);
export const set = (...parts: Uint8Array[]): Buffer => tlv(TAG.SET, ...parts);
/** `[n]` EXPLICIT (constructed context-specific tag). */
export const explicit = (n: number, ...parts: Uint8Array[]): Buffer => tlv(0xa0 | n, ...parts);
/** `[n]` IMPLICIT primitive (e.g. GeneralName uniformResourceIdentifier is [6], dNSName [2]). */
export const implicitPrimitive = (n: number, content: Uint8Array): Buffer => tlv(0x80 | n, content);

/**
 * The minimal two's-complement content octets of a non-negative INTEGER given
 * as unsigned big-endian bytes: leading zeros stripped, one 0x00 prepended when
 * the high bit is set (so it stays positive).
 */
export function integerContent(unsigned: Uint8Array): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  const body = unsigned.subarray(i);
  if (body.length === 0) return Buffer.from([0]);
  if (body[0] & 0x80) {
    const out = Buffer.allocUnsafe(body.length + 1);
    out[0] = 0;
    out.set(body, 1);
    return out;
  }
  return Buffer.from(body);
}

/** INTEGER from unsigned big-endian bytes, or from a small non-negative JS integer. */
export function integer(value: Uint8Array | number): Buffer {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw invalidArgument(`der: cannot encode integer ${value}`);
    const bytes: number[] = [];
    do {
      bytes.unshift(value % 256);
      value = Math.floor(value / 256);
    } while (value > 0);
    return tlv(TAG.INTEGER, integerContent(Uint8Array.from(bytes)));
  }
  return tlv(TAG.INTEGER, integerContent(value));
}

/** OBJECT IDENTIFIER from dotted form, e.g. "1.2.840.10045.4.3.2". */
export function oid(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw invalidArgument(`der: "${dotted}" is not a dotted object identifier`);
  const arcs = dotted.split('.').map(Number);
  if (arcs[0] < 2 && arcs[1] > 39) throw invalidArgument(`der: second arc of "${dotted}" must be below 40`);
  const first = arcs[0] * 40 + arcs[1];
  const out: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    if (!Number.isSafeInteger(arc)) throw invalidArgument(`der: arc of "${dotted}" is too large`);
    const chunk: number[] = [arc % 128];
    let v = Math.floor(arc / 128);
    while (v > 0) {
      chunk.unshift((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

const two = (n: number) => (n < 10 ? '0' : '') + n;

/**
 * X.509 Time (RFC 5280 4.1.2.5): UTCTime `YYMMDDHHMMSSZ` for years 1950–2049,
 * GeneralizedTime `YYYYMMDDHHMMSSZ` otherwise. Milliseconds are dropped
 * (fractional seconds are not allowed), so the encoded instant is never later
 * than `date`.
 */
export function time(date: Date): Buffer {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw invalidArgument('der: invalid date');
  const y = date.getUTCFullYear();
  if (y < 0 || y > 9999) throw invalidArgument(`der: year ${y} cannot be encoded`);
  const rest =
    two(date.getUTCMonth() + 1) + two(date.getUTCDate()) + two(date.getUTCHours()) + two(date.getUTCMinutes()) + two(date.getUTCSeconds()) + 'Z';
  if (y >= 1950 && y <= 2049) return tlv(TAG.UTC_TIME, Buffer.from(two(y % 100) + rest, 'latin1'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, '0') + rest, 'latin1'));
}

/** BIT STRING with `unusedBits` (0–7) unused trailing bits in the last byte. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw invalidArgument(`der: bad unused-bit count ${unusedBits}`);
  }
  return tlv(TAG.BIT_STRING, Uint8Array.of(unusedBits), bytes);
}

export const octetString = (bytes: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, bytes);
export const boolean = (v: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 1, v ? 0xff : 0]);
export const NULL: Buffer = Buffer.from([TAG.NULL, 0]);
export const utf8String = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));

/** PrintableString; throws if `s` has characters outside the PrintableString set. */
export function printableString(s: string): Buffer {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) throw invalidArgument(`der: "${s}" is not a printable string`);
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

/** IA5String (ASCII); throws on non-ASCII input rather than mangling it. */
export function ia5String(s: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(s)) throw invalidArgument('der: ia5 string must be ascii');
  return tlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
}

// ---------------------------------------------------------------- reader

/** One TLV found by {@link readTLV}; the value is `buf.subarray(start, end)`, the whole TLV `buf.subarray(offset, end)`. */
export interface TLV {
  tag: number;
  /** Where the TLV's identifier octet is. */
  offset: number;
  /** Identifier + length octets. */
  headerLength: number;
  /** First value byte. */
  start: number;
  /** One past the last value byte. */
  end: number;
}

/**
 * Reads the TLV at `offset`, not reading past `limit` (default: end of buffer).
 * Strict DER: throws INVALID_ARGUMENT on truncation, indefinite lengths,
 * non-minimal lengths and high tag numbers.
 */
export function readTLV(buf: Uint8Array, offset: number, limit: number = buf.length): TLV {
  if (offset + 2 > limit) throw invalidArgument(`der: truncated at offset ${offset}`);
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw invalidArgument(`der: high tag number at offset ${offset} is not supported`);
  const first = buf[offset + 1];
  let len: number;
  let headerLength = 2;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw invalidArgument(`der: indefinite length at offset ${offset}`);
    if (n > 4) throw invalidArgument(`der: length at offset ${offset} is too large`);
    if (offset + 2 + n > limit) throw invalidArgument(`der: truncated length at offset ${offset}`);
    if (buf[offset + 2] === 0) throw invalidArgument(`der: length at offset ${offset} is not minimally encoded`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i];
    if (len < 0x80) throw invalidArgument(`der: length at offset ${offset} is not minimally encoded`);
    headerLength += n;
  }
  const start = offset + headerLength;
  const end = start + len;
  if (end > limit) throw invalidArgument(`der: value at offset ${offset} is truncated (needs ${len} bytes, has ${limit - start})`);
  return { tag, offset, headerLength, start, end };
}

/** Reads a TLV and checks its tag; `what` names the field in the error. */
export function expectTLV(buf: Uint8Array, offset: number, tag: number, what: string, limit?: number): TLV {
  const t = readTLV(buf, offset, limit);
  if (t.tag !== tag) throw invalidArgument(`der: ${what} has tag 0x${t.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return t;
}

/** The TLVs directly inside a constructed `parent`, which they must fill exactly. */
export function readChildren(buf: Uint8Array, parent: TLV): TLV[] {
  const out: TLV[] = [];
  for (let o = parent.start; o < parent.end; ) {
    const t = readTLV(buf, o, parent.end);
    out.push(t);
    o = t.end;
  }
  return out;
}

/** Dotted form of the OID in `t`. */
export function decodeOid(buf: Uint8Array, t: TLV): string {
  if (t.tag !== TAG.OID || t.end === t.start) throw invalidArgument('der: not an object identifier');
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.start; i < t.end; i++) {
    if (v === 0 && buf[i] === 0x80) throw invalidArgument('der: object identifier arc is not minimally encoded');
    v = v * 128 + (buf[i] & 0x7f);
    if (!(buf[i] & 0x80)) {
      arcs.push(v);
      v = 0;
    } else if (i === t.end - 1) {
      throw invalidArgument('der: object identifier is truncated');
    }
  }
  const first = arcs[0];
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** The instant in a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) TLV; other forms are rejected. */
export function decodeTime(buf: Uint8Array, t: TLV): Date {
  const s = Buffer.from(buf.subarray(t.start, t.end)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw invalidArgument(`der: "${s}" is not a DER time`);
  }
  const d = new Date(0);
  d.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3]));
  d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), 0);
  // Date silently rolls 31 Feb over into March; DER must name a real instant.
  if (d.getUTCMonth() + 1 !== Number(m[2]) || d.getUTCDate() !== Number(m[3]) || d.getUTCHours() !== Number(m[4]) || d.getUTCMinutes() !== Number(m[5]) || d.getUTCSeconds() !== Number(m[6])) {
    throw invalidArgument(`der: "${s}" is not a valid time`);
  }
  return d;
}
