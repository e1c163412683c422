// Crash points, for tests: `PETREL_CRASH_AT=step:k[,step:k...]` kills this process (SIGKILL, nothing flushed)
// right after the k-th Redis command of a protocol step has been answered, before the node acts on the answer
// (k = 0: just before the step's first command). Steps, each counted per run of the step:
//   publish  a store batch that puts messages in other nodes' inboxes (the PUBACK/PUBREC waits for it)
//   deliver  an inbox read (XREADGROUP), then the batch that queues its messages and acknowledges the entries
//   claim    a CONNECT taking a client id: CLAIM, the takeover request to the old owner, the session's loads
//   adopt    a dead node's adoption: every command from listing its sessions to dropping it from the node set
// Without the variable every call here is a constant no-op (one property read per step).

export interface CrashStep {
  /** A Redis command of this run of the step was answered. */
  tick(): void;
}

const NOOP: CrashStep = { tick() {} };

function parse(spec: string | undefined): Map<string, number> {
  const at = new Map<string, number>();
  for (const part of (spec ?? '').split(',')) {
    const m = /^\s*([a-z]+):(\d+)\s*$/.exec(part);
    if (m) at.set(m[1]!, Number(m[2]));
  }
  return at;
}

const armed = parse(process.env.PETREL_CRASH_AT);

/** Whether any crash point is armed (callers skip their checks otherwise). */
export const crashPointsArmed = armed.size > 0;

function die(step: string, k: number): never {
  process.stderr.write(`crash point ${step}:${k}: killing this process\n`);
  process.kill(process.pid, 'SIGKILL');
  // The signal is delivered at once; never return into the step meanwhile.
  for (;;) {
    /* wait for SIGKILL */
  }
}

/** Begin a run of a protocol step (returns a no-op unless a crash point is armed for it). */
export function crashStep(step: string): CrashStep {
  if (armed.size === 0) return NOOP;
  const k = armed.get(step);
  if (k === undefined) return NOOP;
  if (k === 0) die(step, 0);
  let n = 0;
  return {
    tick() {
      if (++n === k) die(step, k);
    },
  };
}
