import fc from 'fast-check';
import * as der from './der';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('der writer', () => {
  it.each([
    [0, '00'],
    [127, '7f'],
    [128, '8180'],
    [255, '81ff'],
    [256, '820100'],
    [65535, '82ffff'],
    [65536, '83010000'],
    [0x1000000, '8401000000'],
  ])('encodes length %d as %s', (n, want) => {
    expect(hex(der.encodeLength(n))).toBe(want);
  });

  it('rejects negative and fractional lengths', () => {
    expect(() => der.encodeLength(-1)).toThrow(/cannot encode length/);
    expect(() => der.encodeLength(1.5)).toThrow(/cannot encode length/);
  });

  it.each([
    [[], '020100'],
    [[0], '020100'],
    [[0, 0, 1], '020101'],
    [[0x7f], '02017f'],
    [[0x80], '02020080'],
    [[0, 0x80], '02020080'],
    [[0, 0, 0x80, 0], '0203008000'],
    [[1, 0], '02020100'],
  ])('encodes unsigned integer bytes %j minimally', (bytes, want) => {
    expect(hex(der.integer(Uint8Array.from(bytes)))).toBe(want);
  });

  it.each([
    [0, '020100'],
    [2, '020102'],
    [127, '02017f'],
    [128, '02020080'],
    [256, '02020100'],
  ])('encodes small number %d', (n, want) => {
    expect(hex(der.integer(n))).toBe(want);
  });

  it.each([
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'],
    ['1.2.840.113549.1.1.11', '06092a864886f70d01010b'],
    ['2.5.29.17', '0603551d11'],
    ['1.3.6.1.5.5.7.3.1', '06082b06010505070301'],
    ['2.999.3', '0603883703'],
  ])('encodes and decodes OID %s', (dotted, want) => {
    const enc = der.oid(dotted);
    expect(hex(enc)).toBe(want);
    expect(der.decodeOid(enc, der.readTLV(enc, 0))).toBe(dotted);
  });

  it('rejects malformed OIDs', () => {
    expect(() => der.oid('1')).toThrow(/dotted/);
    expect(() => der.oid('1.2.03')).toThrow(/dotted/);
    expect(() => der.oid('3.1')).toThrow(/dotted/);
    expect(() => der.oid('1.40')).toThrow(/below 40/);
  });

  it.each([
    ['2049-12-31T23:59:59.999Z', der.TAG.UTC_TIME, '491231235959Z', '2049-12-31T23:59:59.000Z'],
    ['2050-01-01T00:00:00Z', der.TAG.GENERALIZED_TIME, '20500101000000Z', '2050-01-01T00:00:00.000Z'],
    ['1950-01-01T00:00:00Z', der.TAG.UTC_TIME, '500101000000Z', '1950-01-01T00:00:00.000Z'],
    ['1949-12-31T23:59:59Z', der.TAG.GENERALIZED_TIME, '19491231235959Z', '1949-12-31T23:59:59.000Z'],
    ['2026-03-04T05:06:07Z', der.TAG.UTC_TIME, '260304050607Z', '2026-03-04T05:06:07.000Z'],
    ['9999-12-31T23:59:59Z', der.TAG.GENERALIZED_TIME, '99991231235959Z', '9999-12-31T23:59:59.000Z'],
  ])('encodes time %s (ms dropped) and decodes it back', (iso, tag, text, back) => {
    const enc = der.time(new Date(iso));
    expect(enc[0]).toBe(tag);
    expect(enc.subarray(2).toString('latin1')).toBe(text);
    expect(der.decodeTime(enc, der.readTLV(enc, 0)).toISOString()).toBe(back);
  });

  it('rejects invalid dates', () => {
    expect(() => der.time(new Date(NaN))).toThrow(/invalid date/);
  });

  it('encodes strings, bit strings, booleans and NULL', () => {
    expect(hex(der.bitString(Buffer.from([0xa0]), 5))).toBe('030205a0');
    expect(hex(der.bitString(Buffer.alloc(0)))).toBe('030100');
    expect(() => der.bitString(Buffer.alloc(0), 1)).toThrow(/unused-bit/);
    expect(hex(der.octetString(Buffer.from([1, 2])))).toBe('04020102');
    expect(hex(der.boolean(true))).toBe('0101ff');
    expect(hex(der.boolean(false))).toBe('010100');
    expect(hex(der.NULL)).toBe('0500');
    expect(hex(der.utf8String('é'))).toBe('0c02c3a9');
    expect(hex(der.printableString('SPIFFE'))).toBe('1306535049464645');
    expect(() => der.printableString('a@b')).toThrow(/printable/);
    expect(hex(der.ia5String('a'))).toBe('160161');
    expect(() => der.ia5String('é')).toThrow(/ascii/);
    expect(hex(der.explicit(0, der.integer(2)))).toBe('a003020102');
    expect(hex(der.implicitPrimitive(6, Buffer.from('x')))).toBe('860178');
    expect(hex(der.sequence(der.NULL, der.NULL))).toBe('300405000500');
    expect(hex(der.set())).toBe('3100');
  });
});

describe('DerBuilder', () => {
  it('wraps nested marks like nested tlv() calls', () => {
    const big = Buffer.alloc(300, 1);
    const b = new der.DerBuilder();
    const outer = b.mark();
    b.push(der.integer(1));
    const inner = b.mark();
    const innermost = b.mark();
    b.push(big, der.NULL);
    b.wrap(der.TAG.OCTET_STRING, innermost).wrap(der.TAG.SEQUENCE, inner).wrap(0xa3, outer);
    const want = der.explicit(3, der.integer(1), der.sequence(der.octetString(Buffer.concat([big, der.NULL]))));
    expect(b.toBuffer().equals(want)).toBe(true);
    expect(b.length).toBe(want.length);
  });

  it('writes headers', () => {
    expect(hex(der.header(0x30, 0))).toBe('3000');
    expect(hex(der.header(0x04, 300))).toBe('0482012c');
  });
});

describe('der reader', () => {
  it('round-trips any TLV written by the writer', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 30 }), (len, tag) => {
        const value = Buffer.alloc(len, 7);
        const enc = der.tlv(tag, value);
        const t = der.readTLV(enc, 0);
        expect(t).toEqual({ tag, offset: 0, headerLength: enc.length - len, start: enc.length - len, end: enc.length });
      }),
      { numRuns: 200 },
    );
  });

  it('walks children of a constructed value', () => {
    const enc = der.sequence(der.integer(1), der.sequence(der.NULL), der.octetString(Buffer.from('ab')));
    const kids = der.readChildren(enc, der.readTLV(enc, 0));
    expect(kids.map((k) => k.tag)).toEqual([0x02, 0x30, 0x04]);
    expect(Buffer.from(enc.subarray(kids[2].start, kids[2].end)).toString()).toBe('ab');
  });

  it.each([
    ['indefinite length', '308000000000', /indefinite length/],
    ['long form for a short length', '30810100', /not minimally encoded/],
    ['leading zero length byte', '3082008000', /not minimally encoded/],
    ['a 5-byte length', '30850000000001', /too large/],
    ['a truncated value', '300501', /truncated/],
    ['a truncated length', '3082', /truncated/],
    ['a lone byte', '30', /truncated/],
    ['a high tag number', '1f0100', /high tag number/],
  ])('rejects %s', (_name, h, err) => {
    expect(() => der.readTLV(Buffer.from(h, 'hex'), 0)).toThrow(err);
  });

  it('never reads past the limit', () => {
    const enc = Buffer.from('3003020101', 'hex');
    expect(() => der.readTLV(enc, 0, 4)).toThrow(/truncated/);
  });

  it('rejects children that overrun their parent', () => {
    // SEQUENCE of length 3 containing an INTEGER claiming 2 value bytes.
    const enc = Buffer.from('300302020101', 'hex');
    expect(() => der.readChildren(enc, der.readTLV(enc, 0, 5))).toThrow(/truncated/);
  });

  it('checks expected tags', () => {
    expect(() => der.expectTLV(Buffer.from('020100', 'hex'), 0, 0x30, 'thing')).toThrow('der: thing has tag 0x2, expected 0x30');
  });

  it('rejects malformed times and OIDs', () => {
    const bad = (tag: number, s: string) => {
      const enc = der.tlv(tag, Buffer.from(s, 'latin1'));
      return () => der.decodeTime(enc, der.readTLV(enc, 0));
    };
    expect(bad(der.TAG.UTC_TIME, '260231000000Z')).toThrow(/not a valid time/);
    expect(bad(der.TAG.UTC_TIME, '2602010000Z')).toThrow(/not a DER time/);
    expect(bad(der.TAG.UTC_TIME, '260201000000+0100')).toThrow(/not a DER time/);
    expect(bad(der.TAG.GENERALIZED_TIME, '20260201000000.5Z')).toThrow(/not a DER time/);
    expect(bad(der.TAG.OCTET_STRING, '260201000000Z')).toThrow(/not a DER time/);
    const nonMinimalOid = Buffer.from('0603558001', 'hex');
    expect(() => der.decodeOid(nonMinimalOid, der.readTLV(nonMinimalOid, 0))).toThrow(/minimally/);
    const truncatedOid = Buffer.from('06025588', 'hex');
    expect(() => der.decodeOid(truncatedOid, der.readTLV(truncatedOid, 0))).toThrow(/truncated/);
  });
});
