// `petrel --workers 2`: real processes (the primary, two workers, the embedded redis-server) and MQTT.js
// clients on the one shared port. Which worker a client landed on is read from Redis (the cluster records the
// owner of every client id, `petrel:o:<client id>`), never guessed. node:cluster hands connections out round
// robin, so a connection that lands on worker A makes the next one land on worker B (no other client connects
// meanwhile); the tests that need a given worker check where each client landed and retry, bounded.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { connectMqtt, connectRetry, endAll, uniqueId, type Connected } from '../helpers/mqttjs.js';
import { LineProcess } from '../helpers/processes.js';
import { sleep, withTimeout } from '../helpers/wait.js';
import { CLI } from './cli-process.js';

const v5 = { protocolVersion: 5 as const };
const persistent = (clientId: string) => ({ ...v5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } });
const tmp = mkdtempSync(join(tmpdir(), 'petrel-workers-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Whether a pid is a live process (a zombie, dead but not yet reaped, counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

async function gone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = left.filter(alive);
  }
  return left;
}

/** A running `petrel --workers 2` and what its log says. */
interface Workers {
  proc: LineProcess;
  port: number;
  url: string;
  wsUrl: string;
  socket: string;
  redisPid: number;
  redis: Redis;
  /** Node id (host-w1) → pid of its current process. */
  pids(): Map<string, number>;
  /** The node id that owns a client id now (from Redis). */
  owner(clientId: string): Promise<string>;
}

const field = (line: string, k: string): string => new RegExp(`\\b${k}=(\\S+)`).exec(line)?.[1] ?? '';

async function startWorkers(dataDir: string): Promise<Workers> {
  const proc = new LineProcess(process.execPath, [CLI, '--workers', '2', '--port', '0', '--ws-port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--log-format', 'pretty'], {
    env: { PATH: process.env.PATH },
  });
  await proc.waitForLine((l) => /workers started workers=2 redis=/.test(l), 20_000, 'workers started', true);
  const listening = proc.errLines.filter((l) => /listening .*transport=tcp/.test(l)).map((l) => Number(field(l, 'port')));
  assert.equal(listening.length, 2, 'each worker logs its listener');
  assert.equal(listening[0], listening[1], 'port 0: both workers share the one port the primary bound');
  const ws = proc.errLines.filter((l) => /listening .*transport=ws/.test(l)).map((l) => Number(field(l, 'port')));
  assert.equal(ws.length, 2, 'each worker logs its WebSocket listener');
  assert.equal(ws[0], ws[1], 'the WebSocket port is shared too');
  assert.notEqual(ws[0], listening[0]);
  const redisLine = proc.errLines.find((l) => /redis-server started/.test(l))!;
  const socket = field(redisLine, 'socket');
  assert.equal(socket, join(dataDir, 'redis', 'redis.sock'));
  assert.equal(field(proc.errLines.find((l) => /workers started/.test(l))!, 'redis'), socket);
  const redis = new Redis({ path: socket, maxRetriesPerRequest: 2 });
  redis.on('error', () => {});
  const port = listening[0]!;
  return {
    proc,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${ws[0]!}/mqtt`,
    socket,
    redisPid: Number(field(redisLine, 'pid')),
    redis,
    pids() {
      const m = new Map<string, number>();
      for (const l of proc.errLines) if (/worker started/.test(l)) m.set(field(l, 'node'), Number(field(l, 'pid')));
      return m;
    },
    async owner(clientId: string): Promise<string> {
      const member = await redis.hget(`petrel:o:${clientId}`, 'owner');
      assert.ok(member, `an owner for ${clientId}`);
      return member.split('#')[0]!;
    },
  };
}

/** Connect fresh clients until one lands on a worker that `want` accepts (bounded); the others are closed. */
async function landOn(w: Workers, want: (node: string) => boolean, options: object = v5, url = w.url): Promise<Connected & { node: string; clientId: string }> {
  for (let i = 0; i < 8; i++) {
    const clientId = uniqueId('land');
    const c = await connectMqtt(url, { ...options, clientId });
    const node = await w.owner(clientId);
    if (want(node)) return { ...c, node, clientId };
    await endAll(c.client);
  }
  throw new Error('no connection landed on the wanted worker in 8 tries');
}

describe('petrel --workers 2', { timeout: 90_000 }, () => {
  const dataDir = join(tmp, 'data');
  let w: Workers;
  let resumedId = '';

  before(async () => {
    // A socket file left by a crashed run (a listener killed before it could unlink it) must not block start.
    mkdirSync(join(dataDir, 'redis'), { recursive: true });
    const stale = join(dataDir, 'redis', 'redis.sock');
    const holder = new LineProcess(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
    await holder.waitForLine((l) => l === 'up', 5000, 'the stale socket');
    holder.kill();
    await holder.exit(5000).catch(() => null);
    assert.ok(existsSync(stale), 'the stale socket file is there');
    w = await startWorkers(dataDir);
  });
  after(async () => {
    w?.redis.disconnect();
    w?.proc.kill();
  });

  it('spreads MQTT.js clients over both workers, and QoS 0, 1 and 2 cross from one worker to the other', async () => {
    const nodes = [...w.pids().keys()];
    assert.equal(nodes.length, 2);
    assert.deepEqual(nodes.map((n) => n.replace(/^.*-(w\d)$/, '$1')).sort(), ['w1', 'w2']);
    const clients: Connected[] = [];
    const landed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const id = uniqueId('spread');
      clients.push(await connectMqtt(w.url, { ...v5, clientId: id }));
      landed.push(await w.owner(id));
    }
    assert.deepEqual([...new Set(landed)].sort(), [...nodes].sort(), `4 connections landed on ${landed.join(', ')}`);
    await endAll(...clients.map((c) => c.client));

    for (const [from, to] of [[0, 1], [1, 0]] as const) {
      const sub = await landOn(w, (n) => n === nodes[to]);
      const pub = await landOn(w, (n) => n === nodes[from]);
      const topic = `x/${uniqueId('t')}`;
      await sub.client.subscribeAsync(`${topic}/#`, { qos: 2 });
      await sleep(300); // the route reaches the publisher's worker (measured in ms, test/cluster)
      for (const qos of [0, 1, 2] as const) await pub.client.publishAsync(`${topic}/q${qos}`, `m${qos}`, { qos });
      await sub.messages.until((m) => m.length >= 3, 5000, 'the three messages');
      const got = sub.messages.messages.map((m) => `${m.topic.slice(topic.length + 1)}:${m.payload.toString()}:${m.packet.qos}`).sort();
      assert.deepEqual(got, ['q0:m0:0', 'q1:m1:1', 'q2:m2:2'], `${nodes[from]} → ${nodes[to]}`);
      await endAll(sub.client, pub.client);
    }

    // The WebSocket listener is shared the same way: a WebSocket subscriber on one worker, a TCP publisher on the other.
    const wsSub = await landOn(w, () => true, v5, w.wsUrl);
    const tcpPub = await landOn(w, (n) => n !== wsSub.node);
    const wt = `ws/${uniqueId('t')}`;
    await wsSub.client.subscribeAsync(wt, { qos: 1 });
    await sleep(300);
    await tcpPub.client.publishAsync(wt, 'over ws', { qos: 1 });
    assert.deepEqual((await wsSub.messages.count(wt, 1, 5000)).map((m) => m.payload.toString()), ['over ws']);
    await endAll(wsSub.client, tcpPub.client);
  });

  it('resumes a persistent session on the other worker with its queued QoS 1 message', async () => {
    const id = uniqueId('resume');
    const topic = `resume/${id}`;
    const first = await connectMqtt(w.url, persistent(id));
    const home = await w.owner(id);
    await first.client.subscribeAsync(topic, { qos: 1 });
    await first.client.endAsync();
    for (let k = 0; k < 5; k++) {
      const pub = await connectMqtt(w.url, { ...v5, clientId: uniqueId('rpub') });
      await pub.client.publishAsync(topic, `queued-${k}`, { qos: 1 });
      await endAll(pub.client);
      // Round robin: a connection that lands on the session's worker sends the next one to the other worker.
      const probe = await landOn(w, (n) => n === home);
      const back = await connectMqtt(w.url, persistent(id));
      const now = await w.owner(id);
      await back.messages.count(topic, 1, 5000);
      assert.equal(back.connack.sessionPresent, true);
      await endAll(probe.client);
      if (now === home) {
        // Landed on the same worker after all (another connection came between): take the message and again.
        await back.client.endAsync();
        continue;
      }
      const got = back.messages.payloads(topic);
      assert.deepEqual(got, [`queued-${k}`], `the message queued while offline, delivered by ${now} (subscribed on ${home})`);
      assert.equal(back.messages.on(topic)[0]!.packet.qos, 1);
      await back.client.endAsync();
      resumedId = id;
      return;
    }
    assert.fail('the session never landed on the other worker in 5 tries');
  });

  it('kill -9 of a worker: the primary restarts it, the subscriber reconnects, no acknowledged QoS 1 message is lost', async () => {
    const before = w.pids();
    const id = uniqueId('victim');
    const topic = `kill/${id}`;
    const subOptions = persistent(id);
    let sub = await connectMqtt(w.url, subOptions);
    const victim = await w.owner(id);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const pub = await landOn(w, (n) => n !== victim);
    await sleep(300);
    const seen: string[] = [];
    const collect = (s: Connected): void => {
      for (const m of s.messages.messages) seen.push(m.payload.toString());
      s.client.on('message', (_t, p) => seen.push(p.toString()));
    };
    collect(sub);
    const acked: string[] = [];
    let killedAt = 0;
    for (let i = 0; i < 100; i++) {
      if (i === 30) {
        killedAt = Date.now();
        process.kill(before.get(victim)!, 'SIGKILL');
        await endAll(sub.client);
        void connectRetry(w.url, subOptions).then((s) => {
          sub = s;
          collect(s);
        });
      }
      await withTimeout(pub.client.publishAsync(topic, String(i), { qos: 1 }), 10_000, `PUBACK of ${i}`);
      acked.push(String(i));
    }
    await w.proc.waitForLine(
      (l) => /worker started/.test(l) && field(l, 'node') === victim && Number(field(l, 'pid')) !== before.get(victim),
      10_000,
      'the restarted worker',
      true,
    );
    const restart = w.proc.errLines.find((l) => /worker exited, restarting it/.test(l))!;
    assert.equal(field(restart, 'signal'), 'SIGKILL');
    assert.equal(field(restart, 'restart_in_ms'), '1000');
    const deadline = Date.now() + 25_000;
    while (Date.now() < deadline && acked.some((a) => !seen.includes(a))) await sleep(100);
    const lost = acked.filter((a) => !seen.includes(a));
    console.log(`# kill -9 of the subscriber's worker: ${acked.length} acked, ${new Set(seen).size} delivered, ${seen.length - new Set(seen).size} duplicates, ${lost.length} lost; resumed after ${Date.now() - killedAt} ms`);
    assert.deepEqual(lost, [], 'no acknowledged message lost');
    await endAll(sub.client, pub.client);

    // The restarted worker serves clients: one lands on it and gets a message from the other worker.
    const newPid = w.pids().get(victim)!;
    assert.ok(alive(newPid));
    const onNew = await landOn(w, (n) => n === victim);
    const t2 = `kill/after/${id}`;
    await onNew.client.subscribeAsync(t2, { qos: 1 });
    await sleep(300);
    const other = await landOn(w, (n) => n !== victim);
    await other.client.publishAsync(t2, 'after', { qos: 1 });
    await onNew.messages.count(t2, 1, 5000);
    await endAll(onNew.client, other.client);

    // Killed again within 60 s of its start: the back-off doubles.
    const listeningLines = () => w.proc.errLines.filter((l) => /worker listening/.test(l) && Number(field(l, 'pid')) === newPid).length;
    await withTimeout((async () => { while (listeningLines() === 0) await sleep(20); })(), 5000, 'the restarted worker listening');
    process.kill(newPid, 'SIGKILL');
    const second = await w.proc.waitForLine((l) => /worker exited, restarting it/.test(l) && Number(field(l, 'pid')) === newPid, 5000, 'the second restart', true);
    assert.equal(field(second, 'restart_in_ms'), '2000');
    await w.proc.waitForLine(
      (l) => /worker listening/.test(l) && ![before.get(victim), newPid].includes(Number(field(l, 'pid'))) && field(l, 'worker') === victim.replace(/^.*-w/, ''),
      10_000,
      'the third process of the worker listening',
      true,
    );
  });

  it('a second petrel --workers on the same --data-dir is refused and leaves the running Redis alone', async () => {
    const r = spawnSync(process.execPath, [CLI, '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], {
      env: { PATH: process.env.PATH },
      encoding: 'utf8',
      timeout: 15_000,
    });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `petrel: a Redis already answers on ${w.socket}: is another petrel --workers running on this --data-dir?\n`);
    assert.ok(existsSync(w.socket));
    assert.equal(await w.redis.ping(), 'PONG');
  });

  it('SIGHUP is forwarded to every worker (each reloads)', async () => {
    const reloaded = () => w.proc.errLines.filter((l) => /\bconfig\.reloaded\b/.test(l)).length;
    const before = reloaded();
    w.proc.child.kill('SIGHUP');
    await w.proc.waitForLine((l) => /SIGHUP forwarded to the workers workers=2/.test(l), 5000, 'the forwarding', true);
    const deadline = Date.now() + 5000;
    while (reloaded() < before + 2 && Date.now() < deadline) await sleep(20);
    assert.equal(reloaded(), before + 2, 'two workers reloaded');
    // Still serving.
    const c = await connectMqtt(w.url, v5);
    await endAll(c.client);
  });

  it('SIGTERM: the primary stops the workers and redis-server and exits 0; a restart on the same --data-dir keeps the sessions', async () => {
    const pids = [w.proc.child.pid!, ...w.pids().values(), w.redisPid];
    w.redis.disconnect();
    w.proc.child.kill('SIGTERM');
    assert.equal(await w.proc.exit(30_000), 0, w.proc.describe());
    assert.deepEqual(await gone(pids, 3000), [], `pids ${pids.join(' ')}: none left`);
    assert.equal(existsSync(w.socket), false, 'the socket is removed');
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const s = netConnect(w.port, '127.0.0.1');
        s.on('connect', () => {
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      }),
      /ECONNREFUSED/,
    );
    assert.ok(w.proc.errLines.some((l) => /worker exited worker=1 .*code=0/.test(l)));
    assert.ok(w.proc.errLines.some((l) => /worker exited worker=2 .*code=0/.test(l)));

    // Started again on the same data directory: Redis's AOF kept the session of the resume test.
    w = await startWorkers(dataDir);
    assert.ok(resumedId !== '', 'the resume test ran');
    const again = await connectMqtt(w.url, persistent(resumedId));
    assert.equal(again.connack.sessionPresent, true);
    await endAll(again.client);
  });

  it('kill -9 of the primary: the workers and redis-server go too (the watchdog)', async () => {
    const pids = [...w.pids().values(), w.redisPid];
    w.redis.disconnect();
    w.proc.child.kill('SIGKILL');
    await w.proc.exit(5000);
    assert.deepEqual(await gone(pids, 5000), [], `pids ${pids.join(' ')}: none left`);
    // It starts again at once on the same directory (the socket is gone or stale).
    w = await startWorkers(dataDir);
    w.redis.disconnect();
    w.proc.child.kill('SIGTERM');
    assert.equal(await w.proc.exit(30_000), 0);
  });
});

describe('petrel --workers: refused settings (exit 2, one line)', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(process.execPath, [CLI, '--port', '0', '--data-dir', join(tmp, 'refused'), ...args], {
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
      timeout: 15_000,
    });
    return { code: r.status, stderr: r.stderr };
  };
  const cases: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['--workers 0', ['--workers', '0'], {}, /^petrel: --workers: must be an integer from 1 to 64, got 0\n$/],
    ['--workers 65', ['--workers', '65'], {}, /^petrel: --workers: must be an integer from 1 to 64, got 65\n$/],
    ['--workers abc', ['--workers', 'abc'], {}, /^petrel: --workers: must be an integer, got "abc"\n$/],
    ['PETREL_WORKERS=-1', [], { PETREL_WORKERS: '-1' }, /^petrel: --workers: must be an integer from 1 to 64, got -1\n$/],
    ['--http-port with --workers 2', ['--workers', '2', '--http-port', '0'], {}, /^petrel: --http-port: cannot be used with --workers 2: the metrics and health checks are per node/],
    ['--memory with --workers 2', ['--workers', '2', '--memory'], {}, /^petrel: --memory: cannot be used with --workers 2 without --cluster/],
    [
      'no redis-server',
      ['--workers', '2'],
      { PATH: '/nonexistent/bin', PETREL_REDIS_SERVER: '/nonexistent' },
      /^petrel: --workers needs redis-server: install it \(apt-get install redis-server\) or point --cluster at a Redis\n$/,
    ],
  ];
  for (const [name, args, env, expected] of cases) {
    it(name, () => {
      const r = run(args, env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, expected);
    });
  }

  it('--memory is accepted with --workers 2 when --cluster names a Redis (it fails later, on that Redis, not on the flags)', async () => {
    // A socket nobody answers on: the workers cannot join, so the primary stops with 1 rather than 2.
    const dead = join(tmp, 'dead.sock');
    const srv = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(dead, () => r()));
    try {
      const p = new LineProcess(process.execPath, [CLI, '--workers', '2', '--memory', '--port', '0', '--cluster', dead], { env: { PATH: process.env.PATH } });
      const code = await p.exit(30_000);
      assert.equal(code, 1, p.describe());
      assert.match(p.stderr, /worker \d exited \(1\) while starting/);
    } finally {
      srv.close();
    }
  });
});
