'use strict';
// Loader for the native addon (src/peercred.cc) plus pidfdGetPid, which only
// reads a /proc file and so needs no C++. See index.d.ts for the contracts.
const fs = require('fs');
const path = require('path');

function load() {
  const errors = [];
  for (const dir of ['Release', 'Debug']) {
    const file = path.join(__dirname, 'build', dir, 'peercred.node');
    if (!fs.existsSync(file)) continue;
    try {
      return require(file);
    } catch (e) {
      errors.push(e);
    }
  }
  const err = new Error(
    '@tessera/peercred: native addon not built (run `npm rebuild @tessera/peercred`, ' +
      'or `npx node-gyp rebuild --nodedir=/usr` in native/peercred)',
    errors.length ? { cause: errors[0] } : undefined,
  );
  err.code = 'ERR_PEERCRED_NOT_BUILT';
  throw err;
}

const native = load();

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
};
