// Petrel embedded for the metrics-cost scenario:
//   node bench/metrics-broker.mjs --port N [--host H] --metrics on|off [--scrape-ms 5000] [--scrape-cpu C]
//   on:  an HTTP listener with /metrics (latency histograms recorded), scraped every --scrape-ms (default 5000,
//        as a Prometheus would; 0 = never) by bench/scraper.mjs, a process of its own (pinned to CPU C if given)
//   off: no HTTP listener, metrics: false (no clock reading on the hot path; counters only)
// Memory store, log level error, $SYS off (as the CLI target runs it), so the two differ only by metrics.
import { spawn } from 'node:child_process';
import { createBroker } from '../dist/index.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const host = opt('--host', '127.0.0.1');
const on = opt('--metrics', 'on') === 'on';
const scrapeMs = Number(opt('--scrape-ms', '5000'));
const scrapeCpu = opt('--scrape-cpu', null);
if (!port || port === 1883) {
  console.error('metrics-broker: --port N required (not 1883)');
  process.exit(2);
}
const broker = await createBroker({
  store: { type: 'memory' },
  listeners: [{ port, host }],
  logLevel: 'error',
  sysInterval: 0,
  ...(on ? { http: { port: 0, host: '127.0.0.1' }, metrics: true } : { metrics: false }),
});
await broker.listen();
let scraper = null;
if (on && scrapeMs > 0) {
  const url = `http://127.0.0.1:${broker.httpAddress.port}/metrics`;
  const argv = [process.execPath, new URL('./scraper.mjs', import.meta.url).pathname, url, String(scrapeMs)];
  const cmd = scrapeCpu !== null ? ['taskset', '-c', scrapeCpu, ...argv] : argv;
  scraper = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'ignore', 'inherit'] });
}
console.error(`metrics-broker ${host}:${port} metrics ${on ? 'on' : 'off'} ready`);
const stop = () => {
  scraper?.stdin.end();
  setTimeout(() => process.exit(0), 2000).unref();
  broker.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
