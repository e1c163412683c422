// Hostile tests of authentication and authorization, each named for what it proves; plus the ACL over real
// clients: SUBSCRIBE refused 0x87 (v5) / 0x80 (3.1.1, MQTT.js and mosquitto_sub), partial filters filtered,
// retained messages and wills held to the ACL, $SYS, patterns with hostile ids, the anonymous section, and
// rights revoked for live clients on reload.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { RawClient } from '../helpers/raw-client.js';
import { run } from '../helpers/processes.js';
import { deferred, sleep } from '../helpers/wait.js';
import type { Packet, PublishPacket } from '../../src/protocol/packets.js';
import { passwordFileText, TempFiles } from './helpers.js';

const T = { timeout: 30_000 };
const files = new TempFiles();
after(() => files.remove());

const ACL = `# anonymous section
topic read public/#

user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret
topic write wills/alice

user bob
topic readwrite bob/#
topic read shared/#

user admin
topic readwrite #
topic read $SYS/#

pattern readwrite home/%u/#
pattern read devices/%c/#
`;

const USERS = { alice: 'a-pw', bob: 'b-pw', admin: 'adm', '#': 'h', '+': 'p', 'a/+': 's', 'x/y': 'xy' };

function raw(port: number, version: 4 | 5, user: string | undefined, extra: Parameters<typeof RawClient.connect>[2] = {}): Promise<RawClient> {
  const opts = user === undefined ? extra : { username: user, password: Buffer.from((USERS as Record<string, string>)[user] ?? ''), ...extra };
  return RawClient.connect(port, version, opts).then((r) => r.client);
}

/** Wait ms, then read every packet not read yet (the ones before the wait included). */
async function drain(c: RawClient, ms = 300): Promise<Packet[]> {
  await sleep(ms);
  const out: Packet[] = [];
  while (c.unread.length > 0) out.push(await c.next(10));
  return out;
}

async function topicsReceived(c: RawClient, ms = 300): Promise<string[]> {
  const got = await drain(c, ms);
  return got.filter((p): p is PublishPacket => p.type === 3).map((p) => p.topic);
}

describe('ACL file over real connections', () => {
  let tb: TestBroker;
  let aclFile: string;
  before(async () => {
    aclFile = files.write('acl.conf', ACL);
    const pw = files.write('users.pw', passwordFileText(USERS));
    tb = await startBroker({ auth: { passwordFile: pw, aclFile, allowAnonymous: true, loginGuard: false } });
  });
  after(() => tb.close());

  it('v5: a SUBSCRIBE outside the rights is refused with 0x87 (MQTT.js), one inside granted', T, async () => {
    const c = await connectMqtt(tb.url, { protocolVersion: 5, username: 'alice', password: 'a-pw' });
    try {
      // MQTT.js turns a failure code of the SUBACK into an error named after it.
      await assert.rejects(c.client.subscribeAsync({ 'bob/#': { qos: 1 } }), /Not authorized/);
      const granted = await c.client.subscribeAsync({ 'alice/x': { qos: 1 } });
      assert.deepEqual(granted.map((g) => [g.topic, g.qos]), [['alice/x', 1]]);
      assert.ok(tb.broker.stats.subscribeDenied >= 1);
    } finally {
      await endAll(c.client);
    }
  });

  it('3.1.1: a SUBSCRIBE outside the rights is refused with 0x80 (MQTT.js)', T, async () => {
    const c = await connectMqtt(tb.url, { protocolVersion: 4, username: 'alice', password: 'a-pw' });
    try {
      // 0x80 is the only 3.1.1 failure code; MQTT.js reports it as "Unspecified error".
      await assert.rejects(c.client.subscribeAsync({ 'bob/#': { qos: 1 } }), /Unspecified error/);
      const raw4 = await raw(tb.port, 4, 'alice');
      assert.deepEqual((await raw4.subscribe([{ filter: 'bob/#', qos: 1 }])).reasonCodes, [0x80]);
      raw4.destroy();
    } finally {
      await endAll(c.client);
    }
  });

  it('3.1.1: mosquitto_sub is told its SUBSCRIBE was refused (0x80)', T, async () => {
    const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(tb.port), '-V', 'mqttv311', '-u', 'alice', '-P', 'a-pw', '-t', 'bob/#', '-W', '2', '-d'], 10_000);
    assert.match(r.stdout + r.stderr, /SUBACK|granted qos\(128\)|Subscription denied|128/i);
    assert.match(r.stdout + r.stderr, /128/);
  });

  it('a partially granted filter (#) is granted and only readable topics are delivered, counted in aclFiltered', T, async () => {
    const sub = await raw(tb.port, 5, 'alice');
    const pub = await raw(tb.port, 5, 'admin');
    try {
      const ack = await sub.subscribe([{ filter: '#', qos: 0 }]);
      assert.deepEqual(ack.reasonCodes, [0]);
      const before = tb.broker.stats.aclFiltered;
      for (const t of ['alice/1', 'bob/1', 'shared/ok', 'shared/secret', 'other']) pub.publish(t, 'x');
      const got = await topicsReceived(sub, 500);
      assert.deepEqual(got.sort(), ['alice/1', 'shared/ok']);
      assert.equal(tb.broker.stats.aclFiltered - before, 3);
    } finally {
      sub.destroy();
      pub.destroy();
    }
  });

  it('a PUBLISH outside the rights: v5 PUBACK 0x87 and not delivered; 3.1.1 acknowledged and dropped', T, async () => {
    const watcher = await raw(tb.port, 5, 'admin');
    const a5 = await raw(tb.port, 5, 'alice');
    const a4 = await raw(tb.port, 4, 'alice');
    try {
      await watcher.subscribe([{ filter: 'bob/#', qos: 1 }]);
      const before = tb.broker.stats.publishDenied;
      const id5 = a5.publish('bob/inbox', 'forged', { qos: 1 });
      const ack5 = (await a5.expect(4)) as { packetId: number; reasonCode: number };
      assert.equal(ack5.packetId, id5);
      assert.equal(ack5.reasonCode, 0x87);
      a4.publish('bob/inbox', 'forged', { qos: 1 });
      const ack4 = (await a4.expect(4)) as { reasonCode: number };
      assert.equal(ack4.reasonCode, 0);
      assert.deepEqual(await topicsReceived(watcher), []);
      assert.equal(tb.broker.stats.publishDenied - before, 2);
    } finally {
      watcher.destroy();
      a5.destroy();
      a4.destroy();
    }
  });

  it('the anonymous section applies to clients without a user name only', T, async () => {
    const anon = await raw(tb.port, 5, undefined);
    try {
      const ack = await anon.subscribe([{ filter: 'public/#', qos: 0 }, { filter: 'alice/#', qos: 0 }]);
      assert.deepEqual(ack.reasonCodes, [0, 0x87]);
    } finally {
      anon.destroy();
    }
    const bob = await raw(tb.port, 5, 'bob');
    try {
      const ack = await bob.subscribe([{ filter: 'public/#', qos: 0 }]);
      assert.deepEqual(ack.reasonCodes, [0x87]);
    } finally {
      bob.destroy();
    }
  });

  it('$SYS is not granted by # (only by a $SYS rule)', T, async () => {
    const alice = await raw(tb.port, 5, 'alice');
    const admin = await raw(tb.port, 5, 'admin');
    try {
      assert.deepEqual((await alice.subscribe([{ filter: '$SYS/#', qos: 0 }])).reasonCodes, [0x87]);
      assert.deepEqual((await admin.subscribe([{ filter: '$SYS/#', qos: 0 }])).reasonCodes, [0], 'granted by the $SYS rule');
    } finally {
      alice.destroy();
      admin.destroy();
    }
  });

  it('patterns %u and %c: expanded for ordinary names', T, async () => {
    const c = await raw(tb.port, 5, 'bob', { clientId: 'sensor7' });
    try {
      assert.deepEqual((await c.subscribe([{ filter: 'home/bob/#', qos: 0 }, { filter: 'devices/sensor7/t', qos: 0 }, { filter: 'home/alice/#', qos: 0 }])).reasonCodes, [0, 0, 0x87]);
    } finally {
      c.destroy();
    }
  });

  it('shared subscriptions are checked by their inner filter', T, async () => {
    const c = await raw(tb.port, 5, 'alice');
    try {
      assert.deepEqual((await c.subscribe([{ filter: '$share/g/alice/#', qos: 0 }, { filter: '$share/g/bob/#', qos: 0 }])).reasonCodes, [0, 0x87]);
    } finally {
      c.destroy();
    }
  });

  it('a shared-group message a leaving member held is not handed to a member the ACL does not let read it', T, async () => {
    // alice may read shared/# except shared/secret (her $share/g/shared/# is granted in part); bob may read all of it.
    const alice = await raw(tb.port, 5, 'alice');
    const bob = await raw(tb.port, 5, 'bob');
    const pub = await raw(tb.port, 5, 'admin');
    try {
      assert.deepEqual((await alice.subscribe([{ filter: '$share/g2/shared/#', qos: 1 }])).reasonCodes, [1]);
      assert.deepEqual((await bob.subscribe([{ filter: '$share/g2/shared/#', qos: 1 }])).reasonCodes, [1]);
      for (let i = 0; i < 4; i++) pub.publish('shared/secret', `s${i}`, { qos: 1 });
      // Every one goes to bob (alice may not read them); bob does not acknowledge them.
      const toBob = (await drain(bob, 400)).filter((p): p is PublishPacket => p.type === 3);
      assert.equal(toBob.length, 4);
      const redelivered = tb.broker.stats.sharedRedelivered;
      bob.destroy(); // his session ends: its unacknowledged messages would go to another member
      assert.deepEqual(await topicsReceived(alice, 500), [], 'nothing of shared/secret reached alice');
      assert.equal(tb.broker.stats.sharedRedelivered, redelivered);
      // A message alice may read still reaches her through the group.
      pub.publish('shared/ok', 'fine', { qos: 1 });
      assert.deepEqual(await topicsReceived(alice, 400), ['shared/ok']);
    } finally {
      alice.destroy();
      pub.destroy();
    }
  });
});

describe('hostile authentication and authorization', () => {
  it('a takeover attempt with the wrong password fails and the live session survives (connection and subscriptions)', T, async () => {
    const pw = files.write('t1.pw', passwordFileText({ owner: 'right' }));
    const tb = await startBroker({ auth: { passwordFile: pw, loginGuard: false } });
    try {
      const owner = await RawClient.connect(tb.port, 5, { clientId: 'device-1', username: 'owner', password: Buffer.from('right'), clean: false, properties: { sessionExpiryInterval: 300 } });
      await owner.client.subscribe([{ filter: 'cmd', qos: 1 }]);
      const thief = await RawClient.connect(tb.port, 5, { clientId: 'device-1', username: 'owner', password: Buffer.from('guess') }, true);
      assert.equal(thief.connack.reasonCode, 0x86);
      await thief.client.closed();
      // The owner was not disconnected and still gets what its subscription matches.
      await tb.broker.publish('cmd', 'still-mine', { qos: 1 });
      const p = (await owner.client.expect(3)) as PublishPacket;
      assert.equal(p.payload.toString(), 'still-mine');
      assert.equal(tb.broker.session('device-1')!.online, true);
      owner.client.destroy();
    } finally {
      await tb.close();
    }
  });

  it('a session takeover waits for authentication: with a slow authenticate hook the old session is untouched until the new client is accepted', T, async () => {
    const gate = deferred<boolean>();
    const tb = await startBroker({ hooks: { authenticate: (r) => (r.username === 'slow' ? gate.promise : true) } });
    try {
      const old = await RawClient.connect(tb.port, 5, { clientId: 'dev-2', username: 'fast', clean: false, properties: { sessionExpiryInterval: 300 } });
      await old.client.subscribe([{ filter: 'x', qos: 1 }]);
      const nc = await RawClient.open(tb.port, 5);
      nc.sendPacket(nc.connectPacket({ clientId: 'dev-2', username: 'slow', clean: false, properties: { sessionExpiryInterval: 300 } }));
      await sleep(200);
      // Authentication pending: the old connection is still the session's, and it still receives.
      await tb.broker.publish('x', 'during-auth', { qos: 1 });
      assert.equal(((await old.client.expect(3)) as PublishPacket).payload.toString(), 'during-auth');
      gate.resolve(false); // refused in the end
      const connack = (await nc.expect(2)) as { reasonCode: number };
      assert.equal(connack.reasonCode, 0x86);
      await tb.broker.publish('x', 'after-refusal', { qos: 1 });
      assert.equal(((await old.client.expect(3)) as PublishPacket).payload.toString(), 'after-refusal');
      assert.equal(tb.broker.session('dev-2')!.subscriptions, 1);
      old.client.destroy();
      nc.destroy();
    } finally {
      await tb.close();
    }
  });

  it('a user name with #, + or / is never expanded into a pattern (no access to others\' topics)', T, async () => {
    const acl = files.write('h.acl', 'pattern readwrite home/%u/#\npattern readwrite dev/%c\n');
    // A user named '#' cannot be in a password file (the line would be a comment): a hook lets everyone in.
    const tb = await startBroker({ hooks: { authenticate: () => true }, auth: { aclFile: acl } });
    const victim = await raw(tb.port, 5, 'alice');
    try {
      await victim.subscribe([{ filter: 'home/alice/#', qos: 0 }]);
      for (const user of ['#', '+', 'a/+', 'x/y']) {
        const c = await raw(tb.port, 5, user, { clientId: user === '#' ? 'dev-#' : `ok-${user.length}` });
        const ack = await c.subscribe([{ filter: `home/${user}`, qos: 0 }, { filter: 'home/alice/#', qos: 0 }, { filter: 'home/#', qos: 0 }]);
        assert.deepEqual(ack.reasonCodes, [0x87, 0x87, 0x87], `user ${user}`);
        c.publish('home/alice/door', 'open', { qos: 1 });
        assert.equal(((await c.expect(4)) as { reasonCode: number }).reasonCode, 0x87, `user ${user} cannot write into alice's home`);
        c.destroy();
      }
      // A client id with '#' is not expanded either.
      const h = await raw(tb.port, 5, 'bob', { clientId: '#' });
      assert.deepEqual((await h.subscribe([{ filter: 'dev/#', qos: 0 }, { filter: 'dev/+', qos: 0 }])).reasonCodes, [0x87, 0x87]);
      h.destroy();
      assert.deepEqual(await topicsReceived(victim), []);
    } finally {
      victim.destroy();
      await tb.close();
    }
  });

  it('a will on a wildcard or $SYS topic is refused, and a will outside the ACL refuses the CONNECT (0x87 / rc 5) and is never published', T, async () => {
    const acl = files.write('w.acl', 'user alice\ntopic readwrite alice/#\nuser watcher\ntopic read #\n');
    const pw = files.write('w.pw', passwordFileText(USERS));
    const tb = await startBroker({ auth: { passwordFile: pw, aclFile: acl, loginGuard: false } });
    try {
      const pwd = Buffer.from('a-pw');
      for (const [topic, v5, v4] of [['$SYS/fake', 0x87, 5], ['bob/victim', 0x87, 5]] as const) {
        const r5 = await RawClient.connect(tb.port, 5, { username: 'alice', password: pwd, will: { topic, payload: Buffer.from('w'), qos: 0, retain: true } }, true);
        assert.equal(r5.connack.reasonCode, v5, topic);
        r5.client.destroy();
        const r4 = await RawClient.connect(tb.port, 4, { username: 'alice', password: pwd, will: { topic, payload: Buffer.from('w'), qos: 0, retain: true } }, true);
        assert.equal(r4.connack.reasonCode, v4, topic);
        r4.client.destroy();
      }
      // A wildcard will topic is malformed: refused, never published.
      const wc = await RawClient.open(tb.port, 5);
      wc.sendPacket(wc.connectPacket({ username: 'alice', password: pwd, will: { topic: 'alice/#', payload: Buffer.from('w'), qos: 0, retain: false } }));
      const first = await wc.next().catch(() => undefined);
      assert.ok(first === undefined || (first.type === 2 && (first as { reasonCode: number }).reasonCode >= 0x80), 'refused');
      wc.destroy();
      await sleep(100);
      assert.equal(tb.broker.retainedCount, 0, 'no refused will was ever published');
      assert.equal(tb.broker.stats.willsPublished, 0);
    } finally {
      await tb.close();
    }
  });

  it('retained messages the client may not read are not sent on SUBSCRIBE', T, async () => {
    const acl = files.write('r.acl', 'user alice\ntopic read news/public/#\ntopic read news/+/open\n');
    const pw = files.write('r.pw', passwordFileText(USERS));
    const tb = await startBroker({ auth: { passwordFile: pw, aclFile: acl, loginGuard: false } });
    try {
      for (const t of ['news/public/a', 'news/private/a', 'news/private/open', 'news/secret']) await tb.broker.publish(t, t, { retain: true, qos: 1 });
      const c = await raw(tb.port, 5, 'alice');
      const ack = await c.subscribe([{ filter: 'news/#', qos: 1 }]);
      assert.deepEqual(ack.reasonCodes, [1]);
      const got: string[] = [];
      for (const p of await drain(c, 500)) if (p.type === 3) {
        got.push((p as PublishPacket).topic);
        if ((p as PublishPacket).packetId !== undefined) c.puback((p as PublishPacket).packetId!);
      }
      assert.deepEqual(got.sort(), ['news/private/open', 'news/public/a']);
      c.destroy();
    } finally {
      await tb.close();
    }
  });

  it('rights revoked for a live session on reload: its subscription is removed or narrowed, its publishes refused, its changed password disconnects it', T, async () => {
    const aclText = 'user alice\ntopic readwrite alice/#\ntopic readwrite team/#\nuser bob\ntopic readwrite #\n';
    const acl = files.write('rv.acl', aclText);
    const pwText = passwordFileText({ alice: 'a-pw', bob: 'b-pw' });
    const pw = files.write('rv.pw', pwText);
    const tb = await startBroker({ auth: { passwordFile: pw, aclFile: acl, loginGuard: false } });
    try {
      const alice = await raw(tb.port, 5, 'alice');
      const bob = await raw(tb.port, 5, 'bob');
      assert.deepEqual((await alice.subscribe([{ filter: 'team/#', qos: 0 }, { filter: 'alice/#', qos: 0 }])).reasonCodes, [0, 0]);
      bob.publish('team/x', '1');
      assert.deepEqual(await topicsReceived(alice), ['team/x']);

      // A bad file keeps the old rules.
      writeFileSync(acl, 'user alice\ntopic sometimes team/#\n');
      const bad = await tb.broker.reload();
      assert.equal(bad.ok, false);
      assert.match(bad.errors[0]!.message, /rv\.acl:2: invalid access type/);
      bob.publish('team/y', '2');
      assert.deepEqual(await topicsReceived(alice), ['team/y'], 'old rules still apply');

      // team/ taken away, alice/ narrowed.
      writeFileSync(acl, 'user alice\ntopic readwrite alice/mine\nuser bob\ntopic readwrite #\n');
      assert.deepEqual(await tb.broker.reload(), { ok: true, errors: [] });
      bob.publish('team/z', '3');
      bob.publish('alice/other', '4');
      bob.publish('alice/mine', '5');
      assert.deepEqual(await topicsReceived(alice), ['alice/mine'], 'team/# removed, alice/# filtered');
      assert.ok(tb.broker.stats.aclSubscriptionsRevoked >= 1);
      alice.publish('team/x', 'no', { qos: 1 });
      assert.equal(((await alice.expect(4)) as { reasonCode: number }).reasonCode, 0x87, 'further publishes refused');

      // Alice's password changed: she is disconnected with 0x87; bob (unchanged) stays.
      writeFileSync(pw, passwordFileText({ alice: 'new-pw' }) + pwText.split('\n').filter((l) => l.startsWith('bob:')).join('\n') + '\n');
      assert.equal((await tb.broker.reload()).ok, true);
      const d = (await alice.expect(14)) as { reasonCode: number };
      assert.equal(d.reasonCode, 0x87);
      await alice.closed();
      assert.equal(tb.broker.stats.authRevoked, 1);
      bob.sendPacket({ type: 12 });
      await bob.expect(13);
      bob.destroy();
    } finally {
      await tb.close();
    }
  });
});

