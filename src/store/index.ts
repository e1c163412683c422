// The persistence layer: one interface (types.ts), an in-memory and an SQLite
// implementation.

import { MemoryStore } from './memory-store.js';
import { SqliteStore, type Durability } from './sqlite-store.js';
import type { Store } from './types.js';

export * from './types.js';
export { MemoryStore } from './memory-store.js';
export { SqliteStore, type Durability, type SqliteStoreOptions, type SqliteDiagnostics, type StorageCounts } from './sqlite-store.js';
export { SCHEMA_VERSION } from './migrations.js';

export type CreateStoreOptions =
  | { type: 'memory' }
  | { type: 'sqlite'; dataDir: string; durability?: Durability; fileName?: string };

/** A store from options (not yet opened: call open()). */
export function createStore(options: CreateStoreOptions): Store {
  switch (options.type) {
    case 'memory':
      return new MemoryStore();
    case 'sqlite':
      return new SqliteStore(options);
    default:
      throw new TypeError(`unknown store type ${JSON.stringify((options as { type: unknown }).type)}`);
  }
}
