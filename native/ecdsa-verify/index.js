'use strict';
// Loader for the native addon (src/ecdsa_verify.cc). See index.d.ts.
let native;
try {
  native = require('bindings')({ bindings: 'ecdsa_verify.node', module_root: __dirname });
} catch (e) {
  const hint = 'run `npm rebuild @tessera/ecdsa-verify`, or `npx node-gyp rebuild --nodedir=/usr` in native/ecdsa-verify';
  throw Object.assign(new Error(`@tessera/ecdsa-verify: native addon not built (${hint})`, { cause: e }), { code: 'ERR_ECDSA_VERIFY_NOT_BUILT' });
}

module.exports = { verify: native.verify };
