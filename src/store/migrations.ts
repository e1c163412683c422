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

// Version 1 (kept as it was: a database at version 1 is migrated by step 2).
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

// Version 2: single-reference messages inline in the queue row.
//
// Most messages are queued for one session only (point-to-point): for them a
// separate `messages` row cost an insert, a delete and a trigger run per
// message. In version 2:
//
// queue: a rowid table written in insertion order (appends), with the index
//   queue_order (sid, seq, size, shared) for reading a session's queue in seq
//   order, for dequeues, and for the statistics of what a dequeue removes
//   without reading the rows (index only).
//   - shared = 0: the message is inline: topic, received_at, expires_at,
//     properties, payload are in the row, its qos and retain flag in `flags`.
//     message_id is StoredMessage.id; no messages row is involved.
//   - shared = 1: the message is the messages row message_id (counted in its
//     refs); the inline columns are NULL.
//   `flags` packs the small fields: bits 0-1 qos of the delivery, bit 2 its
//   retain flag, bits 3-4 state (QueueState), bits 5-6 qos of the message,
//   bit 7 retain flag of the message (bits 5-7 are only read for inline rows).
//   (sid, seq) is unique; the store keeps it so (it deletes before it inserts
//   a seq again), the index does not enforce it (a unique index would be one
//   more B-tree to write per row).
// messages: as in version 1, for messages referred to more than once when
//   they are written (fan-out, retained). refs = shared queue rows + retained
//   rows. The queue has no triggers any more: the store decrements refs (and
//   deletes what reaches 0) with set-based statements before it deletes queue
//   rows that are shared, which it learns from the index. retained keeps its
//   trigger.
// meta: 'max_message_id', the highest StoredMessage.id written (inline
//   messages are not in `messages`, whose max(id) gave nextMessageId in v1).
//
// Migration from version 1: every v1 queue row becomes a shared row (its
// message stays in `messages` with the same refs), the trigger queue_unref
// goes with the old table, and max_message_id starts at max(messages.id).
const SCHEMA_V2_FROM_V1 = `
CREATE TABLE queue_v2 (
  sid INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  shared INTEGER NOT NULL,
  size INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  subscription_ids TEXT,
  topic TEXT,
  received_at INTEGER,
  expires_at INTEGER,
  properties TEXT,
  payload BLOB
);

INSERT INTO queue_v2 (sid, seq, message_id, shared, size, flags, subscription_ids)
  SELECT sid, seq, message_id, 1, size, qos | (retain << 2) | (state << 3), subscription_ids
  FROM queue ORDER BY sid, seq;

DROP TABLE queue;

ALTER TABLE queue_v2 RENAME TO queue;

CREATE INDEX queue_order ON queue (sid, seq, size, shared);

CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('max_message_id', coalesce((SELECT max(id) FROM messages), 0));
`;

// Version 3: expiry and background purge.
//
// queue.expires_at is now written for shared rows too (a copy of the
// message's expiry), and the partial index queue_expiry (sid, expires_at, seq,
// size) over the rows that expire finds a session's expired entries without
// reading its queue (expireQueue). Rows without an expiry are not in it (no
// cost for them).
// purge: sessions deleted whose queue rows are still being removed, in small
//   steps off the commit path. The sessions row is gone when the sid is here, so
//   nothing can load those rows again; a sid in purge is never given to a new
//   session (the store continues after the highest sid of sessions and purge).
const SCHEMA_V3_FROM_V2 = `
UPDATE queue SET expires_at = (SELECT m.expires_at FROM messages m WHERE m.id = queue.message_id) WHERE shared = 1;
CREATE INDEX queue_expiry ON queue (sid, expires_at, seq, size) WHERE expires_at IS NOT NULL;
CREATE TABLE purge (
  sid INTEGER PRIMARY KEY
);
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema: sessions, subscriptions, inbound_qos2, messages (refcounted), queue, retained',
    up(db) {
      db.exec(SCHEMA_V1);
    },
  },
  {
    version: 2,
    description: 'inline single-reference messages in queue rows (rowid table + index queue_order), no queue triggers, meta.max_message_id',
    up(db) {
      db.exec(SCHEMA_V2_FROM_V1);
    },
  },
  {
    version: 3,
    description: 'queue.expires_at for shared rows too, partial index queue_expiry, table purge (deleted sessions whose rows are being removed)',
    up(db) {
      db.exec(SCHEMA_V3_FROM_V2);
    },
  },
  // { version: 4, description: '...', up(db) { db.exec('ALTER TABLE ...'); } },
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
