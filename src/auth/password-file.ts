// Mosquitto's password file, read and written exactly as mosquitto_passwd 2.0 does:
//
//   user:$6$<salt b64>$<hash b64>                 hash = SHA-512(password || salt)
//   user:$7$<iterations>$<salt b64>$<hash b64>    hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64)
//
// (Mosquitto 2.0: src/password_mosq.c pw__hash, src/security_default.c pwfile__parse and
// unpwd__decode_passwords.) Base64 is standard, padded, without line breaks; Petrel checks it strictly (Node's
// decoder would skip bad characters). Salts of 12 bytes (mosquitto_passwd 2.0) and 64 bytes (2.1) are read;
// the hash is always 64 bytes. A line whose first character is '#' is a comment; a line of blanks is skipped.
// Every other line must be a valid entry: Mosquitto 2.0 drops a bad entry with a log line (and CVE-2018-12551
// was a malformed line becoming a user without password), Petrel refuses the whole file with an error naming
// the line, never echoing the hash.

import { pbkdf2Sync, randomBytes, createHash } from 'node:crypto';

export const DEFAULT_ITERATIONS = 101; // mosquitto_passwd 2.0 (src/password_mosq.h PW_DEFAULT_ITERATIONS)
export const SALT_BYTES = 12; // mosquitto_passwd 2.0 (SALT_LEN)
export const HASH_BYTES = 64;
/** Iterations accepted on read: Mosquitto takes any value >= 1 (atoi); above this a CONNECT would cost seconds. */
export const MAX_ITERATIONS = 10_000_000;

export interface PasswordEntry {
  readonly username: string;
  readonly type: 6 | 7;
  /** PBKDF2 iterations ($7$); 0 for $6$. */
  readonly iterations: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
  /** The entry as written (after trimming), to see whether a reload changed it. */
  readonly text: string;
}

export class PasswordFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'PasswordFileError';
  }
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64, strictly: any other character, missing padding or non-canonical trailing bits is refused. */
export function decodeBase64Strict(s: string): Buffer | null {
  if (s.length === 0 || !B64.test(s)) return null;
  const b = Buffer.from(s, 'base64');
  // Non-zero unused bits in the last character ('QQ==' vs 'QR=='): not what an encoder writes.
  if (b.toString('base64') !== s) return null;
  return b;
}

/** Mosquitto trims blanks (isspace) around the user name and the hash. */
function trimBlanks(s: string): string {
  return s.replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '');
}

/** Parse one entry's hash part ('$6$...' or '$7$...'); a reason on failure (no secret in it). */
export function parseHash(username: string, hashText: string): PasswordEntry | string {
  const parts = hashText.split('$');
  // '$7$101$salt$hash' splits into ['', '7', '101', 'salt', 'hash'].
  if (parts[0] !== '') return 'the password is not hashed (expected $6$ or $7$; convert the file with petrel passwd -U)';
  const type = parts[1];
  let iterations = 0;
  let rest: string[];
  if (type === '6') {
    rest = parts.slice(2);
  } else if (type === '7') {
    const it = parts[2] ?? '';
    if (!/^[0-9]{1,9}$/.test(it)) return 'bad iteration count in a $7$ entry';
    iterations = Number(it);
    if (iterations < 1) return 'iteration count must be at least 1';
    if (iterations > MAX_ITERATIONS) return `iteration count above ${MAX_ITERATIONS}`;
    rest = parts.slice(3);
  } else {
    return `unknown hash type ${JSON.stringify('$' + (type ?? '') + '$').slice(0, 20)} (expected $6$ or $7$)`;
  }
  if (rest.length !== 2) return `a $${type}$ entry must have a salt and a hash separated by '$'`;
  const salt = decodeBase64Strict(rest[0]!);
  if (salt === null) return 'the salt is not valid base64';
  if (salt.length !== 12 && salt.length !== 64) return `the salt must be 12 or 64 bytes, got ${salt.length}`;
  const hash = decodeBase64Strict(rest[1]!);
  if (hash === null) return 'the hash is not valid base64';
  if (hash.length !== HASH_BYTES) return `the hash must be ${HASH_BYTES} bytes, got ${hash.length}`;
  return { username, type: type === '6' ? 6 : 7, iterations, salt, hash, text: hashText };
}

export type PasswordDb = ReadonlyMap<string, PasswordEntry>;

/** Parse a whole file (its text). Throws PasswordFileError naming the first bad line. */
export function parsePasswordFile(text: string, file = 'password file'): Map<string, PasswordEntry> {
  const db = new Map<string, PasswordEntry>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const n = i + 1;
    if (raw.startsWith('#')) continue;
    if (trimBlanks(raw) === '') continue;
    if (raw.includes('\0')) throw new PasswordFileError(file, n, 'the line contains a NUL byte');
    const colon = raw.indexOf(':');
    if (colon < 0) throw new PasswordFileError(file, n, "no ':' between user name and password hash");
    const username = trimBlanks(raw.slice(0, colon));
    // Mosquitto's strtok reads the password up to the next ':'; a hash never contains one.
    const after = raw.slice(colon + 1);
    if (username === '') throw new PasswordFileError(file, n, 'empty user name');
    if (Buffer.byteLength(username) > 65535) throw new PasswordFileError(file, n, 'user name longer than 65535 bytes');
    if (after.includes(':')) throw new PasswordFileError(file, n, "more than one ':' on the line");
    const hashText = trimBlanks(after);
    if (hashText === '') throw new PasswordFileError(file, n, `no password hash for user ${JSON.stringify(username)}`);
    const e = parseHash(username, hashText);
    if (typeof e === 'string') throw new PasswordFileError(file, n, `user ${JSON.stringify(username)}: ${e}`);
    if (db.has(username)) throw new PasswordFileError(file, n, `user ${JSON.stringify(username)} appears twice`);
    db.set(username, e);
  }
  return db;
}

/** The hash of a password for an entry's type, salt and iterations (synchronous: for writing files and tests). */
export function hashSync(type: 6 | 7, password: Buffer, salt: Buffer, iterations: number): Buffer {
  if (type === 6) return createHash('sha512').update(password).update(salt).digest();
  return pbkdf2Sync(password, salt, iterations, HASH_BYTES, 'sha512');
}

/** A new '$7$' hash text for a password, as mosquitto_passwd 2.0 writes it (12-byte random salt, 101 iterations). */
export function makeHashText(password: Buffer | string, iterations = DEFAULT_ITERATIONS, salt: Buffer = randomBytes(SALT_BYTES)): string {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const hash = hashSync(7, pw, salt, iterations);
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** One file line (without newline). */
export function formatEntry(username: string, hashText: string): string {
  return `${username}:${hashText}`;
}
