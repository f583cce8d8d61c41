'use strict';
// Loader for the native addon (src/p256_keys.cc). See index.d.ts.
let native;
try {
  native = require('bindings')({ bindings: 'p256_keys.node', module_root: __dirname });
} catch (e) {
  const hint = 'run `npm rebuild @tessera/p256-keys`, or `npx node-gyp rebuild --nodedir=/usr` in native/p256-keys';
  throw Object.assign(new Error(`@tessera/p256-keys: native addon not built (${hint})`, { cause: e }), { code: 'ERR_P256_KEYS_NOT_BUILT' });
}

module.exports = { generateSigned: native.generateSigned };
