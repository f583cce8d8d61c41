/**
 * A connection flood for the limit tests, run as its own process (under another
 * uid with setpriv): `node dist/test/helpers/flood.js unix SOCKET N` or
 * `... tcp HOST:PORT N [LOCAL_ADDRESS]`. It opens N connections, sends nothing,
 * and holds them. stdout, JSON lines: {type:'settled', open, refused} once every
 * attempt has connected or failed; then {type:'closed', closed} each time the far
 * side closes some (batched per 100 ms). It exits when stdin closes.
 */
import net from 'node:net';

const [kind, target, count, localAddress] = process.argv.slice(2);
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const sockets: net.Socket[] = [];
let open = 0;
let refused = 0;
let closed = 0;
let settled = 0;
let pending = false;
const n = Number(count);

const report = () => {
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    emit({ type: 'closed', closed, open: open - closed });
  }, 100);
};

for (let i = 0; i < n; i++) {
  const opts: net.NetConnectOpts =
    kind === 'unix' ? { path: target! } : { host: target!.slice(0, target!.lastIndexOf(':')), port: Number(target!.slice(target!.lastIndexOf(':') + 1)), localAddress };
  const s = net.connect(opts);
  let connected = false;
  s.on('connect', () => {
    connected = true;
    open++;
    if (++settled === n) emit({ type: 'settled', open, refused });
  });
  s.on('error', () => undefined);
  // Read (and drop) what comes, so that a server closing the connection shows up here as EOF.
  s.resume();
  s.on('close', () => {
    if (!connected) {
      refused++;
      if (++settled === n) emit({ type: 'settled', open, refused });
      return;
    }
    closed++;
    report();
  });
  sockets.push(s);
}
process.stdin.on('data', () => undefined);
process.stdin.on('end', () => process.exit(0));
