// Minimal Aedes launcher for the benchmark: node bench/aedes-broker.mjs --port N [--host 127.0.0.1]
// Default Aedes options (in-memory persistence, concurrency 100), plain TCP via net.createServer(aedes.handle).
import net from 'node:net';
import { Aedes } from 'aedes';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const host = opt('--host', '127.0.0.1');
if (!port || port === 1883) {
  console.error('aedes-broker: --port N required (not 1883)');
  process.exit(2);
}

const aedes = await Aedes.createBroker();
const server = net.createServer(aedes.handle);
server.listen(port, host, () => {
  console.error(`aedes ${host}:${port} ready`);
});
const stop = () => {
  setTimeout(() => process.exit(0), 1000).unref();
  server.close();
  aedes.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
