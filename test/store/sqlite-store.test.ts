import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import type BetterSqlite3 from 'better-sqlite3';
import { createStore, SCHEMA_VERSION } from '../../src/store/index.js';
import { APPLICATION_ID, migrate, MIGRATIONS, readVersion, type Migration } from '../../src/store/migrations.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { encodeProperties } from '../../src/store/serialize.js';
import { QueueState, StoreError, type QueueEntry, type StoredMessage } from '../../src/store/types.js';
import { storeContract } from './contract.js';
import { crashPayload } from './crash-child.js';
import { prng } from '../helpers/random.js';

const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-sqlite-test-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

storeContract('sqlite', async () => {
  const dir = tempDir();
  return {
    store: new SqliteStore({ dataDir: dir }),
    reopen: async () => new SqliteStore({ dataDir: dir }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

function session(clientId: string) {
  return { clientId, protocolVersion: 5 as const, expiryInterval: 3600, disconnectedAt: null, will: null };
}

function isStoreError(code: StoreError['code'], pathPart?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof StoreError, `a StoreError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pathPart !== undefined) assert.ok(err.message.includes(pathPart), `message names the file: ${err.message}`);
    return true;
  };
}

/** Reference counts and queue statistics agree with the rows (checked on a closed store's file). */
function checkIntegrity(file: string): void {
  const db = new Database(file, { readonly: true });
  try {
    // refs = shared queue rows + retained rows. Aggregates joined (not correlated subqueries: no index on message_id).
    const badRefs = db
      .prepare(
        'WITH r AS (SELECT message_id AS id, count(*) AS n FROM (SELECT message_id FROM queue WHERE shared = 1 UNION ALL SELECT message_id FROM retained) GROUP BY message_id) ' +
          'SELECT count(*) FROM messages m LEFT JOIN r ON r.id = m.id WHERE m.refs != coalesce(r.n, 0)',
      )
      .pluck()
      .get();
    assert.equal(badRefs, 0, 'messages.refs = number of shared queue rows and retained rows');
    assert.equal(db.prepare('SELECT count(*) FROM messages WHERE refs <= 0').pluck().get(), 0, 'no unreferenced message');
    assert.equal(
      db.prepare('SELECT count(*) FROM queue q LEFT JOIN messages m ON m.id = q.message_id WHERE q.shared = 1 AND m.id IS NULL').pluck().get(),
      0,
      'no shared queue row without its message',
    );
    assert.equal(
      db.prepare('SELECT count(*) FROM queue WHERE shared = 0 AND (topic IS NULL OR received_at IS NULL OR payload IS NULL OR size != length(payload))').pluck().get(),
      0,
      'inline queue rows have their message',
    );
    assert.equal(
      db.prepare('SELECT count(*) FROM queue WHERE shared = 1 AND (topic IS NOT NULL OR payload IS NOT NULL)').pluck().get(),
      0,
      'shared queue rows have no inline message',
    );
    assert.equal(db.prepare('SELECT count(*) FROM (SELECT 1 FROM queue GROUP BY sid, seq HAVING count(*) > 1)').pluck().get(), 0, '(sid, seq) is unique');
    assert.equal(
      db.prepare('SELECT count(*) FROM retained r LEFT JOIN messages m ON m.id = r.message_id WHERE m.id IS NULL').pluck().get(),
      0,
      'no retained row without its message',
    );
    const badStats = db
      .prepare(
        'WITH q AS (SELECT sid, count(*) AS n, sum(size) AS bytes FROM queue GROUP BY sid) ' +
          'SELECT count(*) FROM sessions s LEFT JOIN q ON q.sid = s.sid WHERE s.queue_count != coalesce(q.n, 0) OR s.queue_bytes != coalesce(q.bytes, 0)',
      )
      .pluck()
      .get();
    assert.equal(badStats, 0, 'sessions.queue_count/queue_bytes match the queue');
    const maxId = db.prepare("SELECT value FROM meta WHERE key = 'max_message_id'").pluck().get() as number;
    const maxStored = db.prepare('SELECT max(id) FROM (SELECT max(id) AS id FROM messages UNION ALL SELECT max(message_id) FROM queue)').pluck().get() as number | null;
    assert.ok(maxId >= (maxStored ?? 0), `meta.max_message_id ${maxId} >= every stored message id (${maxStored})`);
    for (const t of ['queue', 'subscriptions', 'inbound_qos2']) {
      // (queue rows of a deleted session wait for the purge: their sid is in purge)
      const purging = t === 'queue' ? ' AND x.sid NOT IN (SELECT sid FROM purge)' : '';
      assert.equal(db.prepare(`SELECT count(*) FROM ${t} x WHERE x.sid NOT IN (SELECT sid FROM sessions)${purging}`).pluck().get(), 0, `no ${t} rows of deleted sessions`);
    }
    assert.equal(db.prepare('SELECT count(*) FROM purge WHERE sid IN (SELECT sid FROM sessions)').pluck().get(), 0, 'no session being purged is alive');
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  } finally {
    db.close();
  }
}

describe('SqliteStore', () => {
  it('is durable, is created by createStore, creates dataDir', async () => {
    const dir = join(tempDir(), 'nested', 'data');
    const s = createStore({ type: 'sqlite', dataDir: dir });
    assert.ok(s instanceof SqliteStore);
    assert.equal(s.kind, 'sqlite');
    assert.equal(s.durable, true);
    await s.open();
    assert.ok(existsSync(join(dir, 'petrel.db')));
    await s.close();
    const named = new SqliteStore({ dataDir: dir, fileName: 'other.db' });
    await named.open();
    await named.close();
    assert.ok(existsSync(join(dir, 'other.db')));
    assert.throws(() => new SqliteStore({ dataDir: dir, durability: 'disk' as 'power' }), TypeError);
  });

  it('runs in WAL mode; durability chooses synchronous NORMAL or FULL', async () => {
    const dir = tempDir();
    const p = new SqliteStore({ dataDir: dir });
    await p.open();
    let d = p.diagnostics();
    assert.equal(d.journalMode, 'wal');
    assert.equal(d.synchronous, 1, 'process: NORMAL');
    assert.equal(d.lockingMode, 'exclusive');
    assert.equal(d.schemaVersion, SCHEMA_VERSION);
    await p.close();
    const f = new SqliteStore({ dataDir: dir, durability: 'power' });
    await f.open();
    d = f.diagnostics();
    assert.equal(d.journalMode, 'wal');
    assert.equal(d.synchronous, 2, 'power: FULL');
    await f.close();
    assert.ok(!existsSync(join(dir, 'petrel.db-wal')), 'no WAL file left after a clean close');
    // WAL mode is recorded in the file.
    const raw = new Database(join(dir, 'petrel.db'), { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(raw.pragma('application_id', { simple: true }), APPLICATION_ID);
    raw.close();
  });

  it('refuses a garbage file with UNREADABLE and leaves it untouched', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    const garbage = Buffer.alloc(8192);
    const r = prng(1);
    for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(r() * 256);
    writeFileSync(file, garbage);
    await assert.rejects(new SqliteStore({ dataDir: dir }).open(), isStoreError('PETREL_ERR_STORE_UNREADABLE', file));
    assert.ok(readFileSync(file).equals(garbage), 'file bytes unchanged');
    assert.deepEqual(readdirSync(dir), ['petrel.db'], 'no -wal, -shm or -journal created');
    // Short garbage and text, too.
    writeFileSync(file, 'hello');
    await assert.rejects(new SqliteStore({ dataDir: dir }).open(), isStoreError('PETREL_ERR_STORE_UNREADABLE', file));
    assert.equal(readFileSync(file, 'utf8'), 'hello');
  });

  it('refuses an SQLite database of another application and leaves it untouched', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    const other = new Database(file);
    other.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes (text) VALUES (\'keep me\')');
    other.close();
    const before = readFileSync(file);
    await assert.rejects(new SqliteStore({ dataDir: dir }).open(), isStoreError('PETREL_ERR_STORE_UNREADABLE', file));
    assert.ok(readFileSync(file).equals(before));
    assert.deepEqual(readdirSync(dir), ['petrel.db']);
    // Marked as another application's (application_id), even if empty.
    const other2 = new Database(join(dir, 'app.db'));
    other2.pragma('application_id = 1234');
    other2.close();
    const before2 = readFileSync(join(dir, 'app.db'));
    await assert.rejects(new SqliteStore({ dataDir: dir, fileName: 'app.db' }).open(), isStoreError('PETREL_ERR_STORE_UNREADABLE', 'app.db'));
    assert.ok(readFileSync(join(dir, 'app.db')).equals(before2));
  });

  it('refuses a database with a newer schema version with NEWER_VERSION and leaves it untouched', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    // A Petrel database from the future: current schema, version bumped.
    const s = new SqliteStore({ dataDir: dir });
    await s.open();
    s.putSession(session('a'));
    await s.close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.pragma('journal_mode = DELETE');
    db.close();
    const before = readFileSync(file);
    await assert.rejects(new SqliteStore({ dataDir: dir }).open(), (err: unknown) => {
      isStoreError('PETREL_ERR_STORE_NEWER_VERSION', file)(err);
      assert.match((err as Error).message, new RegExp(`version ${SCHEMA_VERSION + 1}`));
      return true;
    });
    assert.ok(readFileSync(file).equals(before), 'file bytes unchanged');
    assert.deepEqual(readdirSync(dir), ['petrel.db']);
  });

  it('refuses a damaged database with UNREADABLE', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    const s = new SqliteStore({ dataDir: dir });
    await s.open();
    s.putSession(session('a'));
    for (let i = 1; i <= 200; i++) s.putSession(session(`client-${i}`));
    await s.close();
    const bytes = readFileSync(file);
    // Keep the header, wreck every page after the first.
    for (let i = 4096; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    writeFileSync(file, bytes);
    await assert.rejects(new SqliteStore({ dataDir: dir }).open(), isStoreError('PETREL_ERR_STORE_UNREADABLE', file));
  });

  it('refuses a second open of the same file while the first is open', async () => {
    const dir = tempDir();
    const first = new SqliteStore({ dataDir: dir });
    await first.open();
    first.putSession(session('a'));
    await first.commit();
    await assert.rejects(new SqliteStore({ dataDir: dir }).open(), isStoreError('PETREL_ERR_STORE_IO'));
    await first.close();
    const again = new SqliteStore({ dataDir: dir });
    const st = await again.open();
    assert.equal(st.sessions.length, 1);
    await again.close();
  });

  describe('migrations', () => {
    function stepLog(db: BetterSqlite3.Database): number[] {
      return (db.prepare('SELECT version FROM step_log ORDER BY rowid').pluck().all() as number[]);
    }
    function schemaDump(db: BetterSqlite3.Database): unknown[] {
      return db.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all();
    }

    it('numbers steps 1, 2, 3 ... and the newest is SCHEMA_VERSION', () => {
      MIGRATIONS.forEach((m, i) => assert.equal(m.version, i + 1));
      assert.equal(SCHEMA_VERSION, MIGRATIONS[MIGRATIONS.length - 1]!.version);
      const db = new Database(':memory:');
      assert.throws(() => migrate(db, [MIGRATIONS[0]!, { version: 3, description: 'gap', up() {} }]), /numbered/);
      db.close();
    });

    it('opening a current database again is idempotent', async () => {
      const dir = tempDir();
      const file = join(dir, 'petrel.db');
      const s1 = new SqliteStore({ dataDir: dir });
      await s1.open();
      s1.putSession(session('a'));
      await s1.close();
      let db = new Database(file);
      const schema = schemaDump(db);
      assert.deepEqual(migrate(db), { from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
      db.close();
      const s2 = new SqliteStore({ dataDir: dir });
      const st = await s2.open();
      assert.equal(st.sessions.length, 1);
      await s2.close();
      db = new Database(file);
      assert.deepEqual(schemaDump(db), schema);
      assert.equal(readVersion(db), SCHEMA_VERSION);
      db.close();
    });

    it('applies the pending steps in order, in one transaction', () => {
      const db = new Database(':memory:');
      const v1 = MIGRATIONS[0]!;
      // Future steps, as they would be appended to MIGRATIONS.
      const logged = (version: number, extra?: (d: BetterSqlite3.Database) => void): Migration => ({
        version,
        description: `test step ${version}`,
        up(d) {
          d.exec('CREATE TABLE IF NOT EXISTS step_log (version INTEGER)');
          d.prepare('INSERT INTO step_log (version) VALUES (?)').run(version);
          extra?.(d);
        },
      });
      assert.deepEqual(migrate(db, [v1]), { from: 0, to: 1, applied: [1] });
      assert.equal(readVersion(db), 1);
      assert.equal(db.pragma('application_id', { simple: true }), APPLICATION_ID);
      // v1 -> v3: steps 2 then 3.
      const v2 = logged(2, (d) => d.exec('ALTER TABLE sessions ADD COLUMN v2_column TEXT'));
      const v3 = logged(3);
      assert.deepEqual(migrate(db, [v1, v2, v3]), { from: 1, to: 3, applied: [2, 3] });
      assert.deepEqual(stepLog(db), [2, 3]);
      assert.equal(readVersion(db), 3);
      // Again: nothing to do.
      assert.deepEqual(migrate(db, [v1, v2, v3]), { from: 3, to: 3, applied: [] });
      assert.deepEqual(stepLog(db), [2, 3]);
      // A failing step rolls the whole migration back.
      const v4 = logged(4);
      const v5: Migration = { version: 5, description: 'fails', up() { throw new Error('step 5 failed'); } };
      assert.throws(() => migrate(db, [v1, v2, v3, v4, v5]), /step 5 failed/);
      assert.equal(readVersion(db), 3);
      assert.deepEqual(stepLog(db), [2, 3]);
      // An older build refuses a newer database.
      assert.throws(() => migrate(db, [v1]), /newer/);
      db.close();
    });

    it('the store migrates a database of an older version when it opens it', async () => {
      // A database at version 0 (empty file) and a version-1 file made by migrate(db, [v1]) go to SCHEMA_VERSION.
      const dir = tempDir();
      const file = join(dir, 'petrel.db');
      const db = new Database(file);
      migrate(db, MIGRATIONS.slice(0, 1));
      db.close();
      const s = new SqliteStore({ dataDir: dir });
      await s.open();
      assert.equal(s.diagnostics().schemaVersion, SCHEMA_VERSION);
      await s.close();
      writeFileSync(join(dir, 'empty.db'), '');
      const e = new SqliteStore({ dataDir: dir, fileName: 'empty.db' });
      await e.open();
      assert.equal(e.diagnostics().schemaVersion, SCHEMA_VERSION);
      await e.close();
    });
  });

  describe('version 2 -> 3', () => {
    it('copies the expiry of shared messages into their queue rows, so that expireQueue finds them and frees the message', async () => {
      const dir = tempDir();
      const file = join(dir, 'petrel.db');
      const v2 = new Database(file);
      v2.pragma('journal_mode = WAL');
      migrate(v2, MIGRATIONS.slice(0, 2));
      assert.equal(readVersion(v2), 2);
      v2.prepare("INSERT INTO sessions (sid, client_id, protocol_version, expiry_interval, last_seq, sent_seq, queue_count, queue_bytes) VALUES (1, 'a', 5, 3600, 3, 0, 3, 9), (2, 'b', 5, 3600, 1, 0, 1, 3)").run();
      v2.prepare("INSERT INTO messages (id, refs, topic, qos, retain, received_at, expires_at, properties, payload) VALUES (1, 2, 't', 1, 0, 0, 500, NULL, x'010203')").run();
      const q = v2.prepare('INSERT INTO queue (sid, seq, message_id, shared, size, flags, topic, received_at, expires_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
      q.run(1, 1, 1, 1, 3, 1 | (1 << 5), null, null, null, null); // shared, expires (in messages) at 500
      q.run(1, 2, 2, 0, 3, 1 | (1 << 5), 'u', 0, 400, Buffer.from([4, 5, 6])); // inline, expires at 400
      q.run(1, 3, 3, 0, 3, 1 | (1 << 5), 'u', 0, null, Buffer.from([7, 8, 9])); // never expires
      q.run(2, 1, 1, 1, 3, 1 | (1 << 5), null, null, null, null);
      v2.close();
      const store = new SqliteStore({ dataDir: dir });
      await store.open();
      assert.equal(store.diagnostics().schemaVersion, SCHEMA_VERSION);
      assert.deepEqual(await store.expireQueue('a', 499, 10), { count: 1, bytes: 3 });
      assert.deepEqual(await store.expireQueue('a', 500, 10), { count: 1, bytes: 3 });
      assert.deepEqual(await store.expireQueue('b', 500, 10), { count: 1, bytes: 3 });
      assert.deepEqual((await store.readQueue('a', 0, 10)).map((e) => e.seq), [3]);
      await store.close();
      const raw = new Database(file, { readonly: true });
      assert.equal(raw.prepare('SELECT count(*) FROM messages').pluck().get(), 0, 'the shared message is freed');
      assert.deepEqual(raw.prepare('SELECT sid, seq FROM queue').raw().all(), [[1, 3]]);
      raw.close();
    });
  });

  describe('version 1 -> 2', () => {
    // The schema version 1 as released to no one but frozen here: a database
    // written by a version-1 Petrel has exactly these objects.
    const V1_DDL = `
      CREATE TABLE sessions (
        sid INTEGER PRIMARY KEY, client_id TEXT NOT NULL UNIQUE, protocol_version INTEGER NOT NULL, expiry_interval INTEGER NOT NULL,
        disconnected_at INTEGER, will_topic TEXT, will_qos INTEGER, will_retain INTEGER, will_delay INTEGER, will_properties TEXT, will_payload BLOB,
        last_seq INTEGER NOT NULL DEFAULT 0, sent_seq INTEGER NOT NULL DEFAULT 0, queue_count INTEGER NOT NULL DEFAULT 0, queue_bytes INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE subscriptions (sid INTEGER NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
        retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL, subscription_id INTEGER, PRIMARY KEY (sid, filter)) WITHOUT ROWID;
      CREATE TABLE inbound_qos2 (sid INTEGER NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (sid, packet_id)) WITHOUT ROWID;
      CREATE TABLE messages (id INTEGER PRIMARY KEY, refs INTEGER NOT NULL, topic TEXT NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
        received_at INTEGER NOT NULL, expires_at INTEGER, properties TEXT, payload BLOB NOT NULL);
      CREATE TABLE queue (sid INTEGER NOT NULL, seq INTEGER NOT NULL, message_id INTEGER NOT NULL, size INTEGER NOT NULL, qos INTEGER NOT NULL,
        retain INTEGER NOT NULL, state INTEGER NOT NULL, subscription_ids TEXT, PRIMARY KEY (sid, seq)) WITHOUT ROWID;
      CREATE TABLE retained (topic TEXT PRIMARY KEY, message_id INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TRIGGER queue_unref AFTER DELETE ON queue BEGIN
        DELETE FROM messages WHERE id = OLD.message_id AND refs <= 1;
        UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;
      END;
      CREATE TRIGGER retained_unref AFTER DELETE ON retained BEGIN
        DELETE FROM messages WHERE id = OLD.message_id AND refs <= 1;
        UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;
      END;`;
    /** Tables, columns (name, type, notnull, pk), indexes and triggers of a database: its shape, whatever the SQL text. */
    function shape(db: BetterSqlite3.Database): unknown {
      const objects = db.prepare("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as { type: string; name: string }[];
      return objects.map((o) => ({
        ...o,
        columns: o.type === 'table' ? db.prepare(`SELECT name, type, "notnull", pk FROM pragma_table_info('${o.name}')`).all() : undefined,
        indexed: o.type === 'index' ? db.prepare(`SELECT name FROM pragma_index_info('${o.name}')`).pluck().all() : undefined,
      }));
    }

    it('step 1 still creates exactly the version-1 schema', () => {
      const a = new Database(':memory:');
      migrate(a, MIGRATIONS.slice(0, 1));
      const b = new Database(':memory:');
      b.exec(V1_DDL);
      assert.deepEqual(shape(a), shape(b));
      a.close();
      b.close();
    });

    it('migrates a version-1 database with queued, shared and retained messages, which then work as before', async () => {
      const dir = tempDir();
      const file = join(dir, 'petrel.db');
      const props = { contentType: 'text/plain', correlationData: Buffer.from([1, 2, 3]), userProperties: [['k', 'v'], ['k', 'w']] as [string, string][] };
      const m1: StoredMessage = { id: 1, topic: 't/1', payload: Buffer.from('one'), qos: 1, retain: false, receivedAt: 1000 };
      const m2: StoredMessage = { id: 2, topic: 't/2', payload: Buffer.from('two!'), qos: 2, retain: false, receivedAt: 2000, expiresAt: 9_000_000_000_000, properties: props };
      const m3: StoredMessage = { id: 3, topic: 'r/3', payload: Buffer.from('three'), qos: 1, retain: true, receivedAt: 3000 };
      const m7: StoredMessage = { id: 7, topic: 'r/7', payload: Buffer.alloc(0), qos: 0, retain: true, receivedAt: 7000 };
      // A version-1 database as the version-1 store wrote it.
      const v1 = new Database(file);
      v1.pragma('journal_mode = WAL');
      v1.exec(V1_DDL);
      v1.pragma('user_version = 1');
      v1.pragma(`application_id = ${APPLICATION_ID}`);
      const msg = v1.prepare('INSERT INTO messages (id, refs, topic, qos, retain, received_at, expires_at, properties, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
      for (const [m, refs] of [[m1, 2], [m2, 1], [m3, 2], [m7, 1]] as const) {
        msg.run(m.id, refs, m.topic, m.qos, m.retain ? 1 : 0, m.receivedAt, m.expiresAt ?? null, encodeProperties(m.properties), m.payload);
      }
      const sess = v1.prepare('INSERT INTO sessions (sid, client_id, protocol_version, expiry_interval, last_seq, sent_seq, queue_count, queue_bytes) VALUES (?, ?, 5, 3600, ?, ?, ?, ?)');
      sess.run(1, 'a', 3, 2, 3, 3 + 4 + 5);
      sess.run(2, 'b', 9, 0, 1, 3);
      sess.run(3, 'c', 0, 0, 0, 0);
      const q = v1.prepare('INSERT INTO queue (sid, seq, message_id, size, qos, retain, state, subscription_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      q.run(1, 1, 1, 3, 1, 0, QueueState.Pending, null);
      q.run(1, 2, 2, 4, 2, 1, QueueState.Pending, '4,5');
      q.run(1, 3, 3, 5, 1, 0, QueueState.Released, '');
      q.run(2, 9, 1, 3, 0, 0, QueueState.Pending, null);
      v1.prepare("INSERT INTO retained (topic, message_id) VALUES ('r/3', 3), ('r/7', 7)").run();
      v1.prepare("INSERT INTO subscriptions VALUES (1, 't/#', 1, 0, 0, 0, 12)").run();
      v1.prepare('INSERT INTO inbound_qos2 VALUES (2, 77)').run();
      v1.close();

      const a: QueueEntry[] = [
        { seq: 1, message: m1, qos: 1, retain: false, state: QueueState.Pending },
        { seq: 2, message: m2, qos: 2, retain: true, state: QueueState.Pending, subscriptionIds: [4, 5] },
        { seq: 3, message: m3, qos: 1, retain: false, state: QueueState.Released, subscriptionIds: [] },
      ];
      let store = new SqliteStore({ dataDir: dir });
      let st = await store.open();
      assert.equal(store.diagnostics().schemaVersion, SCHEMA_VERSION);
      assert.deepEqual(
        st.sessions.map((s) => [s.session.clientId, s.queue, s.subscriptions.length, s.inboundQos2]),
        [
          ['a', { count: 3, bytes: 12, lastSeq: 3, sentSeq: 2 }, 1, []],
          ['b', { count: 1, bytes: 3, lastSeq: 9, sentSeq: 0 }, 0, [77]],
          ['c', { count: 0, bytes: 0, lastSeq: 0, sentSeq: 0 }, 0, []],
        ],
      );
      assert.deepEqual(st.retained, [m3, m7]);
      assert.equal(st.nextMessageId, 8);
      assert.deepEqual(await store.readQueue('a', 0, 10), a);
      assert.deepEqual(await store.readQueue('b', 0, 10), [{ seq: 9, message: m1, qos: 0, retain: false, state: QueueState.Pending }]);
      // The shared messages are released as their references go.
      store.dequeue('a', 1);
      store.dequeue('a', 3);
      store.setRetained('r/7', null);
      store.enqueue('c', { seq: 1, message: m2, qos: 1, retain: false, state: QueueState.Pending });
      store.enqueue('a', { seq: 4, message: { id: 8, topic: 'new', payload: Buffer.from('inline'), qos: 1, retain: false, receivedAt: 8000 }, qos: 1, retain: false, state: QueueState.Pending });
      await store.close();
      checkIntegrity(file);
      let db = new Database(file, { readonly: true });
      assert.deepEqual(db.prepare('SELECT id, refs FROM messages ORDER BY id').all(), [{ id: 1, refs: 1 }, { id: 2, refs: 1 }, { id: 3, refs: 1 }]);
      assert.deepEqual(db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").pluck().all(), ['retained_unref']);
      db.close();
      store = new SqliteStore({ dataDir: dir });
      st = await store.open();
      assert.deepEqual(await store.readQueue('a', 0, 10), [a[1], { seq: 4, message: { id: 8, topic: 'new', payload: Buffer.from('inline'), qos: 1, retain: false, receivedAt: 8000 }, qos: 1, retain: false, state: QueueState.Pending }]);
      assert.deepEqual(await store.readQueue('c', 0, 10), [{ seq: 1, message: m2, qos: 1, retain: false, state: QueueState.Pending }]);
      assert.deepEqual(st.retained, [m3]);
      assert.equal(st.nextMessageId, 9);
      store.deleteSession('b');
      store.dequeue('a', 2);
      store.setRetained('r/3', null);
      await store.close();
      checkIntegrity(file);
      db = new Database(file, { readonly: true });
      assert.deepEqual(db.prepare('SELECT id, refs FROM messages ORDER BY id').all(), []);
      db.close();
    });
  });

  it('writes a message referred to once inline in its queue row, others once to messages', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    const store = new SqliteStore({ dataDir: dir });
    await store.open();
    for (const c of ['a', 'b']) store.putSession(session(c));
    const msg = (id: number): StoredMessage => ({ id, topic: `t/${id}`, payload: Buffer.alloc(10, id), qos: 1, retain: false, receivedAt: id });
    const e = (seq: number, m: StoredMessage): QueueEntry => ({ seq, message: m, qos: 1, retain: false, state: QueueState.Pending });
    store.enqueue('a', e(1, msg(1))); // once: inline
    store.enqueue('a', e(2, msg(2))); // twice: shared
    store.enqueue('b', e(1, msg(2)));
    store.enqueue('a', e(3, msg(3))); // once, and retained: shared
    store.setRetained('r', msg(3));
    store.enqueue('a', e(4, msg(4))); // twice, one cancelled: inline
    store.enqueue('b', e(2, msg(4)));
    store.dequeue('b', 2);
    await store.commit();
    store.enqueue('b', e(3, msg(1))); // again in a later batch: inline again
    await store.close();
    checkIntegrity(file);
    const db = new Database(file, { readonly: true });
    assert.deepEqual(db.prepare('SELECT id, refs FROM messages ORDER BY id').all(), [{ id: 2, refs: 2 }, { id: 3, refs: 2 }]);
    assert.deepEqual(
      db.prepare("SELECT s.client_id AS c, q.seq, q.message_id AS id, q.shared FROM queue q JOIN sessions s USING (sid) ORDER BY c, seq").all(),
      [
        { c: 'a', seq: 1, id: 1, shared: 0 },
        { c: 'a', seq: 2, id: 2, shared: 1 },
        { c: 'a', seq: 3, id: 3, shared: 1 },
        { c: 'a', seq: 4, id: 4, shared: 0 },
        { c: 'b', seq: 1, id: 2, shared: 1 },
        { c: 'b', seq: 3, id: 1, shared: 0 },
      ],
    );
    db.close();
    // nextMessageId stays above ids that were only ever inline, after they are gone.
    const again = new SqliteStore({ dataDir: dir });
    await again.open();
    for (const [c, s] of [['a', 1], ['a', 2], ['a', 3], ['a', 4], ['b', 1], ['b', 3]] as const) again.dequeue(c, s);
    again.setRetained('r', null);
    await again.close();
    checkIntegrity(file);
    const last = new SqliteStore({ dataDir: dir });
    const st = await last.open();
    assert.equal(st.nextMessageId, 5);
    await last.close();
  });

  it('keeps reference counts and queue statistics exact, and frees every message', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    const r = prng(99);
    let store = new SqliteStore({ dataDir: dir });
    await store.open();
    const clients = ['a', 'b', 'c'];
    const live = new Map<string, Set<number>>();
    const lastSeq = new Map<string, number>();
    const msgs: StoredMessage[] = [];
    let nextId = 1;
    for (let step = 0; step < 5000; step++) {
      const c = clients[Math.floor(r() * clients.length)]!;
      if (!live.has(c)) {
        store.putSession(session(c));
        live.set(c, new Set());
        lastSeq.set(c, 0);
      }
      const x = r();
      if (x < 0.45) {
        const m = msgs.length > 0 && r() < 0.4 ? msgs[Math.floor(r() * msgs.length)]! : { id: nextId++, topic: 't', payload: Buffer.alloc(Math.floor(r() * 100)), qos: 1 as const, retain: false, receivedAt: step };
        if (m.id === nextId - 1) msgs.push(m);
        const seq = lastSeq.get(c)! + 1;
        lastSeq.set(c, seq);
        store.enqueue(c, { seq, message: m, qos: 1, retain: false, state: QueueState.Pending });
        live.get(c)!.add(seq);
      } else if (x < 0.85) {
        const set = live.get(c)!;
        const seq = [...set][Math.floor(r() * set.size)] ?? 1;
        store.dequeue(c, seq);
        set.delete(seq);
      } else if (x < 0.88) {
        store.deleteSession(c);
        live.delete(c);
      } else if (x < 0.93 && msgs.length > 0) {
        store.setRetained(`r/${Math.floor(r() * 3)}`, r() < 0.7 ? msgs[Math.floor(r() * msgs.length)]! : null);
      } else if (x < 0.98) {
        await store.commit();
      } else {
        await store.close();
        checkIntegrity(file);
        store = new SqliteStore({ dataDir: dir });
        await store.open();
      }
    }
    await store.close();
    checkIntegrity(file);
    // Everything gone: no message left.
    store = new SqliteStore({ dataDir: dir });
    await store.open();
    for (const c of clients) store.deleteSession(c);
    for (let i = 0; i < 3; i++) store.setRetained(`r/${i}`, null);
    await store.close();
    checkIntegrity(file);
    const db = new Database(file, { readonly: true });
    assert.equal(db.prepare('SELECT count(*) FROM messages').pluck().get(), 0);
    db.close();
  });

  it('writes a message once for many sessions and skips enqueue+dequeue pairs of one batch', async () => {
    const dir = tempDir();
    const file = join(dir, 'petrel.db');
    const store = new SqliteStore({ dataDir: dir });
    await store.open();
    for (const c of ['a', 'b', 'c']) store.putSession(session(c));
    const m: StoredMessage = { id: 1, topic: 't', payload: Buffer.alloc(1000, 1), qos: 1, retain: false, receivedAt: 0 };
    for (const c of ['a', 'b', 'c']) store.enqueue(c, { seq: 1, message: m, qos: 1, retain: false, state: QueueState.Pending });
    const gone: StoredMessage = { id: 2, topic: 't', payload: Buffer.alloc(1000, 2), qos: 1, retain: false, receivedAt: 0 };
    store.enqueue('a', { seq: 2, message: gone, qos: 1, retain: false, state: QueueState.Pending });
    store.dequeue('a', 2);
    await store.close();
    const db = new Database(file, { readonly: true });
    assert.deepEqual(db.prepare('SELECT id, refs FROM messages').all(), [{ id: 1, refs: 3 }]);
    assert.equal(db.prepare('SELECT count(*) FROM queue').pluck().get(), 3);
    assert.equal(db.prepare("SELECT last_seq FROM sessions WHERE client_id = 'a'").pluck().get(), 2);
    db.close();
  });

  it('loses no committed batch and keeps no partial batch when the process is killed (SIGKILL)', async () => {
    const dir = tempDir();
    const K = 200;
    const childPath = fileURLToPath(new URL('./crash-child.js', import.meta.url));
    const r = prng(Date.now() & 0xffff);
    let totalReported = 0;
    for (let round = 0; round < 4; round++) {
      const { reported, start } = await new Promise<{ reported: number; start: number }>((resolve, reject) => {
        const child = spawn(process.execPath, [childPath, dir, String(K)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let buf = '';
        let last = -1;
        let start = -1;
        let killTimer: NodeJS.Timeout | undefined;
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.startsWith('ready ')) {
              start = Number(line.slice(6));
              last = start;
            } else last = Number(line);
            // Kill at a random moment once it is writing.
            if (killTimer === undefined && last > start) killTimer = setTimeout(() => child.kill('SIGKILL'), Math.floor(r() * 400));
          }
        });
        child.on('error', reject);
        child.on('exit', (code, signal) => {
          clearTimeout(killTimer);
          if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code} ${signal}`));
          else resolve({ reported: last, start });
        });
      });
      assert.ok(reported > start, `round ${round}: the child committed batches`);
      totalReported = reported;

      const store = new SqliteStore({ dataDir: dir });
      const st = await store.open();
      const a = st.sessions.find((s) => s.session.clientId === 'a')!;
      const b = st.sessions.find((s) => s.session.clientId === 'b')!;
      // The store is at a batch boundary C, with C = last reported or one more (killed between commit and print).
      const C = a.queue.lastSeq / K;
      assert.ok(Number.isInteger(C), `no partial batch: lastSeq ${a.queue.lastSeq}`);
      assert.ok(C === reported || C === reported + 1, `store at batch ${C}, child reported ${reported}`);
      console.log(`# crash round ${round}: started at batch ${start}, killed after reporting ${reported}, store at ${C}`);
      assert.equal(b.queue.lastSeq, C * K);
      assert.equal(a.queue.sentSeq, C * K);
      const expectA: number[] = [];
      const expectB: number[] = [];
      for (let batch = 1; batch <= C; batch++) {
        for (let i = 0; i < K; i++) {
          const seq = (batch - 1) * K + i + 1;
          expectB.push(seq);
          if (batch === C || i % 2 === 0) expectA.push(seq);
        }
      }
      for (const [client, expected, stats] of [['a', expectA, a.queue], ['b', expectB, b.queue]] as const) {
        const got: number[] = [];
        let bytes = 0;
        for (let from = 0; ; ) {
          const page = await store.readQueue(client, from, 1000);
          for (const e of page) {
            got.push(e.seq);
            bytes += e.message.payload.length;
            assert.ok(e.message.payload.equals(crashPayload(e.seq)), `payload of ${client}/${e.seq}`);
            assert.equal(e.message.id, e.seq);
          }
          if (page.length < 1000) break;
          from = page[page.length - 1]!.seq + 1;
        }
        assert.deepEqual(got, expected, `queue of ${client}`);
        assert.equal(stats.count, expected.length);
        assert.equal(stats.bytes, bytes);
      }
      await store.close();
      checkIntegrity(join(dir, 'petrel.db'));
    }
    assert.ok(totalReported > 0);
  });

  describe('deleting a session with a large queue', () => {
    const N = 12_000; // several purge chunks
    const payload = (seq: number) => Buffer.alloc(32, seq & 0xff);
    function fill(store: SqliteStore): void {
      store.putSession(session('a'));
      store.putSession(session('b'));
      for (let seq = 1; seq <= N; seq++) {
        const message: StoredMessage = { id: seq, topic: `t/${seq}`, payload: payload(seq), qos: 1, retain: false, receivedAt: seq };
        store.enqueue('a', { seq, message, qos: 1, retain: false, state: QueueState.Pending });
        // Every tenth message is shared with b: its references must be released by the purge.
        if (seq % 10 === 0) store.enqueue('b', { seq: seq / 10, message, qos: 1, retain: false, state: QueueState.Pending });
      }
    }
    const fresh = (): QueueEntry => ({
      seq: 1,
      message: { id: N + 1, topic: 'new', payload: Buffer.from('new'), qos: 1, retain: false, receivedAt: 0 },
      qos: 1,
      retain: false,
      state: QueueState.Pending,
    });

    it('a new session with the same client id starts empty at once; the old rows go in the background and free their messages', async () => {
      const dir = tempDir();
      const store = new SqliteStore({ dataDir: dir });
      await store.open();
      fill(store);
      await store.commit();
      store.deleteSession('a');
      store.putSession(session('a'));
      store.enqueue('a', fresh());
      await store.commit();
      assert.deepEqual(await store.readQueue('a', 0, 10), [fresh()], 'only the new entry');
      const first = await store.inspect();
      assert.ok(first.purging <= 1);
      // Bounded wait for the background purge.
      const deadline = Date.now() + 20_000;
      let counts = first;
      while (counts.purging > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        counts = await store.inspect();
      }
      assert.deepEqual(counts, { purging: 0, queueRows: 1 + N / 10, messageRows: N / 10 }, "a's new entry, b's entries and their messages");
      assert.equal((await store.readQueue('b', 0, N)).length, N / 10);
      await store.close();
      checkIntegrity(join(dir, 'petrel.db'));
    });

    it('a close (or a crash) during the purge does not bring the old queue back; the next open finishes the purge', async () => {
      const dir = tempDir();
      let store = new SqliteStore({ dataDir: dir });
      await store.open();
      fill(store);
      await store.commit();
      store.deleteSession('a');
      await store.close(); // at once: the purge has at most begun
      const raw = new Database(join(dir, 'petrel.db'), { readonly: true });
      const left = raw.prepare('SELECT count(*) FROM queue WHERE sid NOT IN (SELECT sid FROM sessions)').pluck().get() as number;
      assert.ok(left > 0 && left < N, `rows of the deleted session left for the purge: ${left}`);
      assert.equal(raw.prepare('SELECT count(*) FROM purge').pluck().get(), 1);
      raw.close();
      checkIntegrity(join(dir, 'petrel.db'));
      store = new SqliteStore({ dataDir: dir });
      const st = await store.open();
      assert.deepEqual(st.sessions.map((x) => x.session.clientId), ['b']);
      store.putSession(session('a'));
      await store.commit();
      assert.deepEqual(await store.readQueue('a', 0, 10), []);
      const deadline = Date.now() + 20_000;
      let counts = await store.inspect();
      while (counts.purging > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        counts = await store.inspect();
      }
      assert.deepEqual(counts, { purging: 0, queueRows: N / 10, messageRows: N / 10 });
      await store.close();
      checkIntegrity(join(dir, 'petrel.db'));
    });

    it('a SIGKILL right after the delete is committed does not bring the old queue back', async () => {
      const dir = tempDir();
      const childPath = fileURLToPath(new URL('./crash-child.js', import.meta.url));
      const line = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [childPath, dir, String(N), 'purge'], { stdio: ['ignore', 'pipe', 'inherit'] });
        let buf = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          buf += chunk;
          if (buf.includes('deleted\n')) child.kill('SIGKILL');
        });
        child.on('error', reject);
        child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(buf) : reject(new Error(`child exited with ${code} ${signal}`))));
      });
      assert.match(line, /deleted/);
      const store = new SqliteStore({ dataDir: dir });
      const st = await store.open();
      const a = st.sessions.find((x) => x.session.clientId === 'a');
      assert.ok(a, 'the new session a');
      assert.deepEqual(a.queue, { count: 1, bytes: 3, lastSeq: 1, sentSeq: 0 });
      assert.deepEqual(await store.readQueue('a', 0, N), [fresh()]);
      await store.close();
      checkIntegrity(join(dir, 'petrel.db'));
    });
  });

  it('runs a commit off the calling thread: the event loop turns while a 10,000-row commit is in progress', async () => {
    const dir = tempDir();
    const store = new SqliteStore({ dataDir: dir });
    await store.open();
    const N = 10_000;
    for (let i = 0; i < N; i++) store.putSession(session(`s${i}`));
    await store.commit();
    const message: StoredMessage = { id: 1, topic: 'fan/x', payload: Buffer.alloc(64), qos: 1, retain: false, receivedAt: 0 };
    // A setImmediate queued before commit() runs before the commit resolves
    // only if the commit's work is done elsewhere: a commit done on this thread
    // resolves first, every time. The worker may still answer before this
    // thread reaches the loop when the machine is loaded, so each check gets a
    // few tries (with a fresh batch each), and one turn proves it.
    const turnsDuring = async (prepare: (attempt: number) => void | Promise<void>): Promise<boolean> => {
      for (let attempt = 0; attempt < 5; attempt++) {
        await prepare(attempt);
        let turned = false;
        setImmediate(() => (turned = true));
        await store.commit();
        if (turned) return true;
      }
      return false;
    };
    assert.ok(
      await turnsDuring((attempt) => {
        for (let i = 0; i < N; i++) store.enqueue(`s${i}`, { seq: attempt + 1, message, qos: 1, retain: false, state: QueueState.Pending });
      }),
      'a setImmediate queued before commit() ran before it resolved',
    );
    // The same for the deletion of a large queue.
    assert.ok(
      await turnsDuring(async (attempt) => {
        const owner = `s${attempt}`;
        for (let seq = 10; seq <= 20_000; seq++) store.enqueue(owner, { seq, message: { ...message, id: seq + attempt * 100_000 }, qos: 1, retain: false, state: QueueState.Pending });
        await store.commit();
        store.deleteSession(owner);
      }),
      'a setImmediate queued before the commit of a large deletion ran before it resolved',
    );
    await store.close();
  });

  it('does not keep the process alive when it is left open', async () => {
    const dir = tempDir();
    const storeUrl = new URL('../../src/store/sqlite-store.js', import.meta.url).href;
    const script =
      `const { SqliteStore } = await import(${JSON.stringify(storeUrl)});` +
      `const s = new SqliteStore({ dataDir: ${JSON.stringify(dir)} }); await s.open();` +
      "s.putSession({ clientId: 'a', protocolVersion: 5, expiryInterval: 60, disconnectedAt: null, will: null }); await s.commit();" +
      "process.stdout.write('committed\\n');";
    const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (c: string) => (out += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
    assert.equal(result.out, 'committed\n');
    assert.equal(result.code, 0, 'exited by itself');
  });

  it('keeps RSS bounded: 1,000,000 queued entries for 10 sessions', async () => {
    const dir = tempDir();
    const store = new SqliteStore({ dataDir: dir });
    await store.open();
    const sessions = Array.from({ length: 10 }, (_, i) => `client-${i}`);
    for (const c of sessions) store.putSession(session(c));
    await store.commit();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const rss0 = process.memoryUsage.rss();
    let peak = rss0;
    let half = rss0;
    const t0 = Date.now();
    const N = 1_000_000;
    const B = 1000;
    const seqs = new Array<number>(sessions.length).fill(0);
    for (let n = 0; n < N; ) {
      for (let i = 0; i < B; i++, n++) {
        const k = n % sessions.length;
        const payload = Buffer.allocUnsafe(64).fill(n & 0xff);
        store.enqueue(sessions[k]!, { seq: ++seqs[k]!, message: { id: n + 1, topic: `t/${k}`, payload, qos: 1, retain: false, receivedAt: n }, qos: 1, retain: false, state: QueueState.Pending });
      }
      await store.commit();
      if (n % 50_000 === 0) peak = Math.max(peak, process.memoryUsage.rss());
      if (n === N / 2) half = peak;
    }
    const ms = Date.now() - t0;
    peak = Math.max(peak, process.memoryUsage.rss());
    const growthMb = (peak - rss0) / 1048576;
    const page = await store.readQueue('client-3', 50_000, 10);
    assert.deepEqual(page.map((e) => e.seq), [50_000, 50_001, 50_002, 50_003, 50_004, 50_005, 50_006, 50_007, 50_008, 50_009]);
    await store.close();
    const st = await (async () => {
      const s = new SqliteStore({ dataDir: dir });
      const loaded = await s.open();
      await s.close();
      return loaded;
    })();
    assert.equal(st.sessions.reduce((n, s) => n + s.queue.count, 0), N);
    const secondHalfMb = (peak - half) / 1048576;
    console.log(`# RSS test: 1,000,000 entries in ${ms} ms, RSS growth ${growthMb.toFixed(1)} MB (bound 150 MB), of which ${secondHalfMb.toFixed(1)} MB in the second half (bound 30 MB)`);
    assert.ok(growthMb < 150, `RSS grew ${growthMb.toFixed(1)} MB`);
    // A fixed working set: the second 500,000 entries add (almost) nothing.
    assert.ok(secondHalfMb < 30, `RSS grew ${secondHalfMb.toFixed(1)} MB in the second half`);
  });
});
