// Schema versions of the SQLite store and the steps between them.
//
// The version lives in the database header (PRAGMA user_version); the header's
// application_id marks the file as Petrel's. A database at version N is
// brought to the newest version by running the steps N+1, N+2, ... in order,
// all in ONE transaction together with the new user_version: a crash during a
// migration leaves the database at its old version.
//
// To change the schema: append a step { version: LAST + 1, ... } to MIGRATIONS.
// Never edit a step that has been released; write a new one instead.

import type BetterSqlite3 from 'better-sqlite3';

type Db = BetterSqlite3.Database;

export interface Migration {
  /** The version the database has after this step. Steps are numbered 1, 2, 3, ... */
  readonly version: number;
  readonly description: string;
  /** Runs inside the migration transaction. */
  up(db: Db): void;
}

/** 'PETL': written to the header's application_id of every Petrel database. */
export const APPLICATION_ID = 0x5045544c;

// Version 1.
//
// sessions: one row per persistent session. `sid` is a compact integer key the
//   other tables use instead of the client id. The queue statistics (last_seq,
//   sent_seq, queue_count, queue_bytes) are kept here so that open() costs
//   O(sessions), not O(queued messages).
// messages: each StoredMessage once, with a reference count (`refs`) = number
//   of queue rows + retained rows that refer to it. Increments are written by
//   the store (one upsert per message per commit); decrements and the removal
//   of unreferenced messages are done by the triggers below, so deleting a
//   session's whole queue is a single DELETE. The payload is the last column
//   so that reading the other columns never touches its overflow pages.
// queue: the per-session queue, in seq order. `size` is the payload length
//   (for queue_bytes without reading the message).
// retained: topic -> message.
const SCHEMA_V1 = `
CREATE TABLE sessions (
  sid INTEGER PRIMARY KEY,
  client_id TEXT NOT NULL UNIQUE,
  protocol_version INTEGER NOT NULL,
  expiry_interval INTEGER NOT NULL,
  disconnected_at INTEGER,
  will_topic TEXT,
  will_qos INTEGER,
  will_retain INTEGER,
  will_delay INTEGER,
  will_properties TEXT,
  will_payload BLOB,
  last_seq INTEGER NOT NULL DEFAULT 0,
  sent_seq INTEGER NOT NULL DEFAULT 0,
  queue_count INTEGER NOT NULL DEFAULT 0,
  queue_bytes INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE subscriptions (
  sid INTEGER NOT NULL,
  filter TEXT NOT NULL,
  qos INTEGER NOT NULL,
  no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL,
  retain_handling INTEGER NOT NULL,
  subscription_id INTEGER,
  PRIMARY KEY (sid, filter)
) WITHOUT ROWID;

CREATE TABLE inbound_qos2 (
  sid INTEGER NOT NULL,
  packet_id INTEGER NOT NULL,
  PRIMARY KEY (sid, packet_id)
) WITHOUT ROWID;

CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  refs INTEGER NOT NULL,
  topic TEXT NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  expires_at INTEGER,
  properties TEXT,
  payload BLOB NOT NULL
);

CREATE TABLE queue (
  sid INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  size INTEGER NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  state INTEGER NOT NULL,
  subscription_ids TEXT,
  PRIMARY KEY (sid, seq)
) WITHOUT ROWID;

CREATE TABLE retained (
  topic TEXT PRIMARY KEY,
  message_id INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER queue_unref AFTER DELETE ON queue BEGIN
  DELETE FROM messages WHERE id = OLD.message_id AND refs <= 1;
  UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;
END;

CREATE TRIGGER retained_unref AFTER DELETE ON retained BEGIN
  DELETE FROM messages WHERE id = OLD.message_id AND refs <= 1;
  UPDATE messages SET refs = refs - 1 WHERE id = OLD.message_id;
END;
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema: sessions, subscriptions, inbound_qos2, messages (refcounted), queue, retained',
    up(db) {
      db.exec(SCHEMA_V1);
    },
  },
  // { version: 2, description: '...', up(db) { db.exec('ALTER TABLE ...'); } },
];

/** The version this build writes and reads. */
export const SCHEMA_VERSION: number = lastVersion(MIGRATIONS);

function lastVersion(migrations: readonly Migration[]): number {
  return migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
}

function checkSteps(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration steps must be numbered 1, 2, 3, ...: step ${i} has version ${m.version}`);
  });
}

export function readVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export interface MigrationResult {
  from: number;
  to: number;
  /** The versions of the steps that ran, in order. */
  applied: number[];
}

/**
 * Bring the database to the newest version of `migrations` (default: this
 * build's). The caller has checked that the database is not newer. Idempotent:
 * a database at the newest version is left as it is.
 */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): MigrationResult {
  checkSteps(migrations);
  const target = lastVersion(migrations);
  const run = db.transaction((): MigrationResult => {
    // Read inside the (immediate) transaction: nobody can change it meanwhile.
    const from = readVersion(db);
    if (from > target) throw new Error(`database version ${from} is newer than ${target}`);
    const applied: number[] = [];
    for (const step of migrations) {
      if (step.version <= from) continue;
      step.up(db);
      applied.push(step.version);
    }
    if (applied.length > 0) {
      db.pragma(`user_version = ${target}`);
      db.pragma(`application_id = ${APPLICATION_ID}`);
    }
    return { from, to: target, applied };
  });
  return run.immediate();
}
