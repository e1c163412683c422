// The metrics-cost scenario's Prometheus: node bench/scraper.mjs URL INTERVAL_MS
// Fetches URL at once (within the loadgen's warm-up, as a Prometheus has long been scraping a running broker),
// then every INTERVAL_MS. It runs as a process of its own (bench/metrics-broker.mjs starts it, on the load
// generator's core when pinning is possible), so what is measured is the broker's side of a scrape, not the
// scraper's. It exits when its standard input closes (the broker is gone).
const [url, every] = process.argv.slice(2);
const scrape = () => fetch(url).then((r) => r.arrayBuffer()).catch(() => {});
scrape();
setInterval(scrape, Number(every));
process.stdin.on('end', () => process.exit(0)).resume();
