// Password verification off the event loop, with bounded concurrency.
//
// - $7$ entries: crypto.pbkdf2 (libuv's thread pool). $6$ entries: one SHA-512 through WebCrypto's
//   subtle.digest, which also runs in the thread pool: both kinds go the same way.
// - At most maxConcurrent hashes run at once (the thread pool, 4 threads by default, is shared with fs, dns
//   and zlib: a CONNECT flood must not take all of it); at most maxPending more wait. The waiting ones are
//   served round-robin by client address, so a flood from one address does not push a healthy client from
//   another behind all of it. Beyond maxPending verify() answers 'busy' at once (CONNACK 0x89 Server busy).
// - An unknown user, or a known user without a password, is hashed against a dummy entry of the same kind as
//   the file's entries, so timing does not tell which users exist; the answer is then 'bad' whatever the hash.
// - The comparison is crypto.timingSafeEqual over the 64 bytes.
// - A password containing a NUL byte is refused (Mosquitto hashes up to the first NUL: 'pw\0junk' would be
//   accepted for 'pw'); it is still hashed (dummy), so the refusal takes as long as any other.

import { pbkdf2, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';
import { DEFAULT_ITERATIONS, HASH_BYTES, type PasswordDb, type PasswordEntry } from './password-file.js';

export type VerifyResult = 'ok' | 'bad' | 'busy';

function hashAsync(e: PasswordEntry, password: Buffer): Promise<Buffer> {
  if (e.type === 7) {
    return new Promise((resolve, reject) => {
      pbkdf2(password, e.salt, e.iterations, HASH_BYTES, 'sha512', (err, key) => (err ? reject(err) : resolve(key)));
    });
  }
  return webcrypto.subtle.digest('SHA-512', Buffer.concat([password, e.salt])).then((ab) => Buffer.from(ab));
}

export class PasswordVerifier {
  private running = 0;
  /** Waiting hashes by client address, served round-robin (Map order: the next address to serve first). */
  private readonly queues = new Map<string, (() => void)[]>();
  private pending = 0;
  /** The dummy entry hashed for unknown users: the kind and iteration count most entries of the file use. */
  private dummy: PasswordEntry;

  constructor(
    readonly maxConcurrent: number,
    readonly maxPending: number,
    db: PasswordDb,
  ) {
    this.dummy = dummyFor(db);
  }

  /** The file was reloaded: the dummy follows its entries. */
  setDb(db: PasswordDb): void {
    this.dummy = dummyFor(db);
  }

  /** Hashes running now, and waiting. */
  get load(): { running: number; pending: number } {
    return { running: this.running, pending: this.pending };
  }

  /** Check a password against the entry of a user (undefined: unknown user). */
  verify(entry: PasswordEntry | undefined, password: Buffer | undefined, address = ''): Promise<VerifyResult> | VerifyResult {
    if (this.running >= this.maxConcurrent && this.pending >= this.maxPending) return 'busy';
    const usable = entry !== undefined && password !== undefined && !password.includes(0);
    const e = usable ? entry : this.dummy;
    const pw = password ?? EMPTY;
    return this.run(address, async () => {
      const got = await hashAsync(e, pw);
      const same = got.length === e.hash.length && timingSafeEqual(got, e.hash);
      return usable && same ? 'ok' : 'bad';
    });
  }

  private async run<T>(address: string, fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      await new Promise<void>((resolve) => {
        let q = this.queues.get(address);
        if (q === undefined) this.queues.set(address, (q = []));
        q.push(resolve);
        this.pending++;
      });
    }
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.next();
    }
  }

  private next(): void {
    const first = this.queues.entries().next();
    if (first.done) return;
    const [address, q] = first.value;
    const resolve = q.shift()!;
    this.pending--;
    // This address goes to the back of the line (or leaves it).
    this.queues.delete(address);
    if (q.length > 0) this.queues.set(address, q);
    resolve();
  }
}

const EMPTY = Buffer.alloc(0);

function dummyFor(db: PasswordDb): PasswordEntry {
  // The most common (type, iterations, salt length) of the file.
  const counts = new Map<string, { n: number; e: PasswordEntry }>();
  for (const e of db.values()) {
    const k = `${e.type}/${e.iterations}/${e.salt.length}`;
    const c = counts.get(k);
    if (c) c.n++;
    else counts.set(k, { n: 1, e });
  }
  let best: PasswordEntry | undefined;
  let n = 0;
  for (const c of counts.values()) if (c.n > n) ({ n, e: best } = c);
  const type = best?.type ?? 7;
  const iterations = best?.iterations ?? DEFAULT_ITERATIONS;
  const salt = randomBytes(best?.salt.length ?? 12);
  return { username: '', type, iterations, salt, hash: randomBytes(HASH_BYTES), text: '' };
}
