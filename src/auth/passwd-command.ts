// `petrel passwd`: create, update and delete users of a Mosquitto password file, as mosquitto_passwd 2.0 does,
// writing $7$ entries (PBKDF2-SHA512, 101 iterations, 12-byte salt).
//
//   petrel passwd [-I iterations] [-c] file user            add or update user; password asked twice (TTY) or read from stdin
//   petrel passwd [-I iterations] [-c] -b file user password batch: the password on the command line
//   petrel passwd -D file user                              delete user
//   petrel passwd -U file                                   hash every plain-text `user:password` line
//
// -c creates (or overwrites) the file. The file is written whole to a temporary file beside it (mode 0600)
// and renamed over the old one, so a reader sees the old file or the new one, never half of one. Unlike
// mosquitto_passwd, -U leaves lines that are already hashed ($6$/$7$) as they are (mosquitto_passwd would hash
// the hash), and a password containing a NUL byte is refused (the broker refuses such passwords).

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, chmodSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DEFAULT_ITERATIONS, formatEntry, makeHashText, MAX_ITERATIONS, parseHash } from './password-file.js';

const USAGE = `Usage: petrel passwd [-I iterations] [-c] passwordfile username
       petrel passwd [-I iterations] [-c] -b passwordfile username password
       petrel passwd -D passwordfile username
       petrel passwd -U passwordfile
 -b : batch mode: the password is given on the command line.
 -c : create a new password file (an existing one is overwritten).
 -D : delete the user rather than add or update it.
 -I : PBKDF2 iterations of new hashes (default ${DEFAULT_ITERATIONS}).
 -U : convert a plain-text password file (user:password lines) to hashed passwords.
`;

export interface PasswdIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function checkUsername(u: string): string | null {
  if (u === '') return 'the user name must not be empty';
  if (Buffer.byteLength(u) > 65535) return 'the user name must be less than 65536 bytes long';
  if (u.includes(':')) return "the user name must not contain the ':' character";
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(u)) return 'the user name must not contain control characters';
  return null;
}

function checkPassword(p: string): string | null {
  if (Buffer.byteLength(p) > 65535) return 'the password must be less than 65536 bytes long';
  if (p.includes('\0')) return 'the password must not contain a NUL byte';
  if (p.includes('\n') || p.includes('\r')) return 'the password must not contain a line break';
  return null;
}

/** Read one line from a stream that is not a terminal. */
function readLine(stdin: NodeJS.ReadableStream): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer | string): void => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(buf.slice(0, nl).replace(/\r$/, ''));
    };
    const onEnd = (): void => finish(buf === '' ? null : buf.replace(/\r$/, ''));
    const finish = (v: string | null): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', reject);
      stdin.pause();
      resolve(v);
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.on('error', reject);
    stdin.resume();
  });
}

/** Ask for a password on a terminal, without echo. */
function askHidden(io: PasswdIO, prompt: string): Promise<string | null> {
  return new Promise((resolve) => {
    io.stdout.write(prompt);
    const stdin = io.stdin;
    stdin.setRawMode?.(true);
    let s = '';
    const onData = (c: Buffer | string): void => {
      for (const ch of c.toString()) {
        if (ch === '\r' || ch === '\n') return done(s);
        if (ch === '\u0003' || ch === '\u0004') return done(null);
        if (ch === '\u007f' || ch === '\b') s = s.slice(0, -1);
        else s += ch;
      }
    };
    const done = (v: string | null): void => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stdout.write('\n');
      resolve(v);
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** Write a file atomically: a temporary file beside it (mode 0600), fsync, rename. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  chmodSync(tmp, 0o600);
  try {
    renameSync(tmp, file);
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}

export async function runPasswd(argv: string[], io: PasswdIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const err = (m: string): number => {
    io.stderr.write(`Error: ${m}\n`);
    return 1;
  };
  let create = false, batch = false, del = false, update = false;
  let iterations = DEFAULT_ITERATIONS;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c') create = true;
    else if (a === '-b') batch = true;
    else if (a === '-D') del = true;
    else if (a === '-U') update = true;
    else if (a === '-I') {
      const v = argv[++i];
      if (v === undefined || !/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > MAX_ITERATIONS) return err(`-I needs a number of iterations from 1 to ${MAX_ITERATIONS}`);
      iterations = Number(v);
    } else if (a === '-h' || a === '--help') {
      io.stdout.write(USAGE);
      return 0;
    } else if (a === '--') {
      i++;
      break;
    } else if (a.startsWith('-') && a.length > 1) {
      io.stderr.write(USAGE);
      return err(`unknown option ${a}`);
    } else break;
  }
  const rest = argv.slice(i);
  if (create && del) return err('-c and -D cannot be used together.');
  if (create && update) return err('-c and -U cannot be used together.');
  if (del && update) return err('-D and -U cannot be used together.');
  if (batch && del) return err('-b and -D cannot be used together.');
  const want = update ? 1 : del ? 2 : batch ? 3 : 2;
  if (rest.length !== want) {
    io.stderr.write(USAGE);
    return err(update ? '-U needs the password file only.' : del ? '-D needs the password file and a user name.' : batch ? '-b needs the password file, a user name and a password.' : 'the password file and a user name are needed.');
  }
  const file = rest[0]!;
  const username = rest[1];
  if (username !== undefined) {
    const bad = checkUsername(username);
    if (bad !== null) return err(bad);
  }

  // The existing file, line by line (comments and blank lines kept).
  let lines: string[] = [];
  if (!create) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      return err(`cannot read password file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    for (let n = 0; n < lines.length; n++) {
      const l = lines[n]!.replace(/\r$/, '');
      lines[n] = l;
      if (l.startsWith('#') || l.trim() === '') continue;
      if (!l.includes(':')) return err(`corrupt password file at line ${n + 1}.`);
    }
  }

  if (update) {
    for (let n = 0; n < lines.length; n++) {
      const l = lines[n]!;
      if (l.startsWith('#') || l.trim() === '') continue;
      const colon = l.indexOf(':');
      const user = l.slice(0, colon).trim();
      const pw = l.slice(colon + 1).replace(/^[ \t\v\f]+|[ \t\v\f]+$/g, ''); // trimmed, as Mosquitto
      if (typeof parseHash(user, pw) !== 'string') continue; // already hashed
      const bad = checkUsername(user) ?? checkPassword(pw);
      if (bad !== null) return err(`line ${n + 1}: ${bad}`);
      lines[n] = formatEntry(user, makeHashText(pw, iterations));
    }
  } else if (del) {
    const before = lines.length;
    lines = lines.filter((l) => l.startsWith('#') || !l.includes(':') || l.slice(0, l.indexOf(':')).trim() !== username);
    if (lines.length === before) {
      io.stderr.write(`Warning: User ${username} not found in password file.\n`);
      return 1;
    }
  } else {
    let password: string | null;
    if (batch) password = rest[2]!;
    else if (io.stdin.isTTY) {
      password = await askHidden(io, 'Password: ');
      if (password === null) return err('no password given.');
      const again = await askHidden(io, 'Reenter password: ');
      if (again !== password) return err('Passwords do not match.');
    } else {
      password = await readLine(io.stdin);
      if (password === null) return err('no password given on standard input.');
    }
    const bad = checkPassword(password);
    if (bad !== null) return err(bad);
    const entry = formatEntry(username!, makeHashText(password, iterations));
    let found = false;
    lines = lines.map((l) => {
      if (l.startsWith('#') || !l.includes(':') || l.slice(0, l.indexOf(':')).trim() !== username) return l;
      found = true;
      return entry;
    });
    if (!found) lines.push(entry);
  }
  try {
    writeFileAtomic(file, lines.length === 0 ? '' : lines.join('\n') + '\n');
  } catch (e) {
    return err(`cannot write password file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return 0;
}
