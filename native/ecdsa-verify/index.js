'use strict';
// Loader for the native addon (src/ecdsa_verify.cc). See index.d.ts.
const fs = require('fs');
const path = require('path');

function load() {
  const errors = [];
  for (const dir of ['Release', 'Debug']) {
    const file = path.join(__dirname, 'build', dir, 'ecdsa_verify.node');
    if (!fs.existsSync(file)) continue;
    try {
      return require(file);
    } catch (e) {
      errors.push(e);
    }
  }
  const err = new Error(
    '@tessera/ecdsa-verify: native addon not built (run `npm rebuild @tessera/ecdsa-verify`, ' +
      'or `npx node-gyp rebuild --nodedir=/usr` in native/ecdsa-verify)',
    errors.length ? { cause: errors[0] } : undefined,
  );
  err.code = 'ERR_ECDSA_VERIFY_NOT_BUILT';
  throw err;
}

module.exports = { verify: load().verify };
