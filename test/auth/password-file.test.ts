// The password file: Mosquitto's own test vectors, strict parsing with line numbers and no secret in errors,
// files written by the real mosquitto_passwd, and `petrel passwd` (whose files the real mosquitto broker reads).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Writable, PassThrough } from 'node:stream';
import net from 'node:net';
import { decodeBase64Strict, hashSync, parsePasswordFile, PasswordFileError, type PasswordEntry } from '../../src/auth/password-file.js';
import { PasswordVerifier } from '../../src/auth/verifier.js';
import { runPasswd } from '../../src/auth/passwd-command.js';
import { run, LineProcess } from '../helpers/processes.js';
import { sleep } from '../helpers/wait.js';

const T = { timeout: 30_000 };

// From Mosquitto's tests (test/broker/09-pwfile-parse-invalid.py, 01-connect-uname-password-denied.pwfile,
// 23-security-password-file-reload.py (64-byte salt)) and one $7$101 entry made with a known salt.
const VECTORS: [string, string][] = [
  ['test:$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==', 'test'],
  ['empty:$6$o+53eGXtmlfHeYrg$FY7X9DNQ4uU1j0NiPmGOOSU05ZSzhqNmNhXIof/0nLpVb1zDhcRHdaC72E3YryH7dtTiG/r6jH6C8J+30cZBgA==', ''],
  ['user:$6$vZY4TS+/HBxHw38S$vvjVFECzb8dyuu/mruD2QKTfdFn0WmKxbc+1TsdB0L8EdHk3v9JRmfjHd56+VaTnUcSZOZ/hzkdvWCtxlX7AUQ==', 'password'],
  ['test7:$7$1000$97ozvObcN5zP4MGzYUw4uRp8+mPQbThrHOX69vdHHNVwV4iZf2K2X23FS7weilZMKeV+9oLHdilybmpXcFApYg==$WlM0jUhsiQNQJe4IDt5K1rmtAdaenWGdntswJmDkp74W9pdrt/+RdIK3YaJ09o3pD1xbtokXq933bQh+CrjA4Q==', 'test'],
  ['alice:$7$101$AAECAwQFBgcICQoL$kKKiBdwaAq/ppA5yyiA/6xc5wmGCXbn8w6DXm5gvyW7lJhto2thXVJSKVgbrM07SPYDXu07ejLsHjabF/egXvg==', 'petrel'],
];

async function verify(e: PasswordEntry | undefined, pw: Buffer | undefined): Promise<string> {
  const v = new PasswordVerifier(2, 100, new Map());
  return v.verify(e, pw);
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'petrel-pw-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('password file: Mosquitto test vectors', () => {
  it('every vector verifies with its password and not with another (sync hash and async verifier)', T, async () => {
    const db = parsePasswordFile(VECTORS.map((v) => v[0]).join('\n') + '\n');
    assert.equal(db.size, VECTORS.length);
    for (const [line, pw] of VECTORS) {
      const user = line.slice(0, line.indexOf(':'));
      const e = db.get(user)!;
      assert.deepEqual(hashSync(e.type, Buffer.from(pw), e.salt, e.iterations), e.hash, user);
      assert.equal(await verify(e, Buffer.from(pw)), 'ok', user);
      assert.equal(await verify(e, Buffer.from(pw + 'x')), 'bad', user);
    }
    assert.equal(db.get('test7')!.salt.length, 64, 'a 64-byte salt (mosquitto 2.1) is read');
    assert.equal(db.get('alice')!.iterations, 101);
  });

  it('an unknown user, a missing password and a password with NUL are "bad" (after a dummy hash)', T, async () => {
    const db = parsePasswordFile(VECTORS[0]![0]);
    const e = db.get('test')!;
    assert.equal(await verify(undefined, Buffer.from('test')), 'bad');
    assert.equal(await verify(e, undefined), 'bad');
    assert.equal(await verify(e, Buffer.from('test\0junk')), 'bad', 'never cut at the NUL as Mosquitto does');
  });

  it('comments and blank lines are skipped; CRLF line ends are read', () => {
    const db = parsePasswordFile(`# a comment\n\n   \n${VECTORS[0]![0]}\r\n#x:y\n`);
    assert.deepEqual([...db.keys()], ['test']);
  });

  it('refuses every malformed line with its line number and never echoes the hash', () => {
    const good = VECTORS[0]![0];
    const salt = 'njERlZMi/7DzNB9E';
    const hash = 'iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==';
    const bad = [
      'bad:',
      'bad:$',
      'bad:$6',
      'bad:$6$',
      `bad:$6$${salt}`,
      `bad:$5$${salt}$${hash}`,
      `:$6$${salt}$${hash}`,
      `bad:$6$${salt}$${hash.slice(0, 10)}{${hash.slice(11)}`,
      `bad:$6$${salt}$${hash.replace('==', '')}`,
      `bad:$6$${salt.slice(0, -1)}$${hash}`,
      `bad:$6$${salt}$${hash.slice(4)}`,
      `bad:$7$0$${salt}$${hash}`,
      `bad:$7$-1$${salt}$${hash}`,
      `bad:$7$x$${salt}$${hash}`,
      'bad:plaintext',
      'no colon at all',
      `test:$6$${salt}$${hash}`, // a duplicate of line 1
    ];
    for (const b of bad) {
      assert.throws(
        () => parsePasswordFile(`${good}\n${b}\n`, '/etc/pw'),
        (e: unknown) => e instanceof PasswordFileError && e.line === 2 && e.message.startsWith('/etc/pw:2: ') && !e.message.includes(hash.slice(0, 20)) && !e.message.includes(salt),
        b,
      );
    }
  });

  it('base64 is strict: bad characters, missing padding and non-canonical bits are refused', () => {
    assert.deepEqual(decodeBase64Strict('QUJD'), Buffer.from('ABC'));
    for (const s of ['QUJ', 'QU=D', 'QUJD=', 'QR==', 'Q!JD', 'QUJD\n', '']) assert.equal(decodeBase64Strict(s), null, s);
  });
});

describe('password file: the real mosquitto_passwd and petrel passwd', () => {
  it('reads the $7$ and $6$ entries mosquitto_passwd writes (-c -b, -b, -H sha512)', T, async () => {
    const f = join(dir, 'mosq.pw');
    assert.equal((await run('mosquitto_passwd', ['-c', '-b', f, 'alice', 'alice-pw'], 10_000)).code, 0);
    assert.equal((await run('mosquitto_passwd', ['-b', f, 'bob', 'bob pw with spaces'], 10_000)).code, 0);
    assert.equal((await run('mosquitto_passwd', ['-H', 'sha512', '-b', f, 'carol', 'c'], 10_000)).code, 0);
    const db = parsePasswordFile(readFileSync(f, 'utf8'), f);
    assert.equal(db.get('alice')!.type, 7);
    assert.equal(db.get('alice')!.iterations, 101);
    assert.equal(db.get('alice')!.salt.length, 12);
    assert.equal(db.get('carol')!.type, 6);
    assert.equal(await verify(db.get('alice'), Buffer.from('alice-pw')), 'ok');
    assert.equal(await verify(db.get('bob'), Buffer.from('bob pw with spaces')), 'ok');
    assert.equal(await verify(db.get('carol'), Buffer.from('c')), 'ok');
    assert.equal(await verify(db.get('alice'), Buffer.from('bob pw with spaces')), 'bad');
  });

  const io = (stdin = new PassThrough()): { io: Parameters<typeof runPasswd>[1]; err: () => string } => {
    let err = '';
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const errs = new Writable({
      write: (c, _e, cb) => {
        err += c.toString();
        cb();
      },
    });
    return { io: { stdin, stdout: sink, stderr: errs }, err: () => err };
  };

  it('petrel passwd -c -b / -b / stdin / -D / -U: $7$ 101 entries, mode 0600, as mosquitto_passwd', T, async () => {
    const f = join(dir, 'petrel.pw');
    assert.equal(await runPasswd(['-c', '-b', f, 'alice', 'a1'], io().io), 0);
    assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.equal(await runPasswd(['-b', f, 'bob', 'b1'], io().io), 0);
    const stdin = new PassThrough();
    stdin.end('c1\n');
    assert.equal(await runPasswd([f, 'carol'], io(stdin).io), 0, 'password read from stdin when it is not a terminal');
    assert.equal(await runPasswd(['-b', f, 'alice', 'a2'], io().io), 0, 'update');
    let db = parsePasswordFile(readFileSync(f, 'utf8'));
    assert.deepEqual([...db.keys()], ['alice', 'bob', 'carol']);
    for (const e of db.values()) {
      assert.equal(e.type, 7);
      assert.equal(e.iterations, 101);
      assert.equal(e.salt.length, 12);
    }
    assert.equal(await verify(db.get('alice'), Buffer.from('a2')), 'ok');
    assert.equal(await verify(db.get('carol'), Buffer.from('c1')), 'ok');
    assert.equal(await runPasswd(['-D', f, 'bob'], io().io), 0);
    const missing = io();
    assert.equal(await runPasswd(['-D', f, 'nobody'], missing.io), 1);
    assert.match(missing.err(), /not found/);
    db = parsePasswordFile(readFileSync(f, 'utf8'));
    assert.deepEqual([...db.keys()], ['alice', 'carol']);

    const plain = join(dir, 'plain.pw');
    writeFileSync(plain, `# users\nu1:p1\nu2:  p2  \n${VECTORS[0]![0]}\n`);
    assert.equal(await runPasswd(['-U', plain], io().io), 0);
    db = parsePasswordFile(readFileSync(plain, 'utf8'));
    assert.equal(await verify(db.get('u1'), Buffer.from('p1')), 'ok');
    assert.equal(await verify(db.get('u2'), Buffer.from('p2')), 'ok', 'trimmed, as mosquitto_passwd');
    assert.equal(db.get('test')!.type, 6, 'an already hashed line is left alone');
    assert.match(readFileSync(plain, 'utf8'), /^# users\n/);
  });

  it('petrel passwd refuses bad arguments, user names with ":" and passwords with NUL', T, async () => {
    const f = join(dir, 'x.pw');
    for (const args of [['-c', '-D', f, 'u'], ['-b', '-D', f, 'u'], ['-c', '-U', f], ['-b', f, 'u'], ['-c', '-b', f, 'a:b', 'p'], ['-c', '-b', f, 'u', 'p\0q'], ['-z', f]]) {
      assert.equal(await runPasswd(args, io().io), 1, JSON.stringify(args));
    }
  });

  it('the real mosquitto broker accepts a file petrel passwd wrote (format compatible both ways)', T, async () => {
    const f = join(dir, 'for-mosquitto.pw');
    assert.equal(await runPasswd(['-c', '-b', f, 'dora', 'explorer'], io().io), 0);
    const port = await freePort();
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${f}\npersistence false\n# Run as ourselves: the file is mode 0600.\nuser ${userInfo().username}\n`);
    const broker = new LineProcess('mosquitto', ['-c', conf]);
    try {
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        await sleep(100);
        const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'dora', '-P', 'explorer', '-t', 't', '-m', 'x'], 5000);
        ok = r.code === 0;
      }
      assert.ok(ok, 'mosquitto_pub with the right password is accepted by mosquitto');
      const bad = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'dora', '-P', 'wrong', '-t', 't', '-m', 'x'], 5000);
      assert.notEqual(bad.code, 0, 'and a wrong one refused');
    } finally {
      broker.kill();
      await broker.exit(3000).catch(() => null);
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
