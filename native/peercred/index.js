'use strict';
// Loader for the native addon (src/peercred.cc) plus pidfdGetPid, which only
// reads a /proc file and so needs no C++. See index.d.ts for the contracts.
const fs = require('fs');

let native;
try {
  native = require('bindings')({ bindings: 'peercred.node', module_root: __dirname });
} catch (e) {
  const hint = 'run `npm rebuild @tessera/peercred`, or `npx node-gyp rebuild --nodedir=/usr` in native/peercred';
  throw Object.assign(new Error(`@tessera/peercred: native addon not built (${hint})`, { cause: e }), { code: 'ERR_PEERCRED_NOT_BUILT' });
}

const PID_LINE = /^Pid:\s*(-?\d+)\s*$/m;

function pidfdGetPid(pidfd) {
  if (!Number.isInteger(pidfd) || pidfd < 0) throw new RangeError('pidfd must be a non-negative integer');
  const text = fs.readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8');
  const m = PID_LINE.exec(text);
  if (!m) {
    const err = new Error(`fd ${pidfd} is not a pidfd (no Pid: line in its fdinfo)`);
    err.code = 'EINVAL';
    throw err;
  }
  return Number(m[1]);
}

module.exports = {
  getPeerCred: native.getPeerCred,
  getPeerPidfd: native.getPeerPidfd,
  pidfdOpen: native.pidfdOpen,
  pidfdIsAlive: native.pidfdIsAlive,
  pidfdGetPid,
  closeFd: native.closeFd,
  shutdownSocket: native.shutdownSocket,
};
