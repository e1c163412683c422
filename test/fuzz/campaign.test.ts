// The grammar-based fuzz campaign (campaign.ts) bounded for CI: PETREL_CAMPAIGN_SEQUENCES sequences (default
// 40,000: 50,000 took 62 s here next to the Jazzer test; 100,000 take about a minute alone, so the full
// count is the long run: `node build/test/fuzz/campaign-cli.js --sequences 100000`),
// PETREL_CAMPAIGN_SEED replays one.

import { describe, it } from 'node:test';
import { check, report, runCampaign } from './campaign.js';

const SEQUENCES = Number(process.env.PETREL_CAMPAIGN_SEQUENCES ?? 40_000);
const SEED = process.env.PETREL_CAMPAIGN_SEED !== undefined ? Number(process.env.PETREL_CAMPAIGN_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;

describe(`fuzz campaign: ${SEQUENCES} generated and mutated packet sequences over real sockets (seed ${SEED})`, { timeout: 280_000 }, () => {
  it('across 3.1, 3.1.1 and 5.0 and connection states: the broker never dies, internalErrors 0, no unhandled rejection, its output decodes, the canary loses nothing, RSS bounded', { timeout: 270_000 }, async (t) => {
    const o = { sequences: SEQUENCES, seed: SEED, log: (l: string) => console.log(`# ${l}`) };
    const r = await runCampaign(o);
    for (const l of report(r, SEED)) {
      t.diagnostic(l);
      console.log(`# ${l}`);
    }
    check(r, o);
  });
});
