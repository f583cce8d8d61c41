/**
 * UTF-8 byte length of a string, without allocating. Node's `Buffer.byteLength`
 * does the same, but this module is also bundled into the browser console
 * (console/ui), which has no Buffer; TextEncoder would allocate a copy per call on
 * paths the server runs for every request. A lone surrogate counts 3 bytes, as
 * its U+FFFD replacement does when encoded.
 */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
