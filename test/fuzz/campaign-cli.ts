// The long fuzz campaign: node build/test/fuzz/campaign-cli.js [--sequences N] [--seed N] [--parallel N]
// (after npx tsc -p tsconfig.test.json). Prints the figures; exit status 1 if a check fails.

import { check, report, runCampaign } from './campaign.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const o = {
  sequences: Number(arg('sequences') ?? 100_000),
  seed: arg('seed') !== undefined ? Number(arg('seed')) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0,
  ...(arg('parallel') !== undefined ? { parallel: Number(arg('parallel')) } : {}),
};
const r = await runCampaign(o);
for (const l of report(r, o.seed)) console.log(l);
try {
  check(r, o);
  console.log('campaign: all checks passed');
} catch (e) {
  console.log(`campaign: FAILED: ${(e as Error).message}`);
  for (const b of r.badOutput) console.log(b);
  process.exit(1);
}
process.exit(0);
