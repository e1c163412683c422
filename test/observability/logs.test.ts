// Structured logs (src/broker/logger.ts, README "Logs"): the real `petrel` command with stderr piped writes one
// JSON record per line (pino's level, time, msg, and a stable event at info and above); MQTT.js connections
// give client.connected and client.disconnected with the right fields and reason (normal DISCONNECT, keep
// alive timeout, takeover); a password, an HTTP token and authentication data never reach the log; --log-format
// pretty gives human lines; --log-level warn leaves connection events out; a pino instance passed as `logger`
// gets our fields; every info/warn/error call in src/ names its event.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { createBroker, createLogger } from '../../src/index.js';
import { kill, startPetrel, type PetrelProcess } from '../durability/petrel-process.js';
import { CLI, freePorts } from '../cli/cli-process.js';
import { findEvent, logRecords, parseLogLine, type LogRecord } from '../helpers/log-lines.js';
import { connectMqtt, uniqueId } from '../helpers/mqttjs.js';
import { LineProcess } from '../helpers/processes.js';
import { RawClient } from '../helpers/raw-client.js';
import { passwordFileText, TempFiles } from '../auth/helpers.js';

const T = { timeout: 60_000 };
const PASSWORD = 'pa55-w0rd-never-logged';
const WRONG = 'wr0ng-pa55-never-logged';

/** Wait (bounded) until the process's log has a record with this event matching pred. */
async function waitEvent(p: PetrelProcess, event: string, pred: (r: LogRecord) => boolean = () => true, ms = 10_000): Promise<LogRecord> {
  const end = Date.now() + ms;
  for (;;) {
    const r = findEvent(p.log(), event, pred);
    if (r !== undefined) return r;
    if (Date.now() > end) throw new Error(`no ${event} record within ${ms} ms:\n${p.log()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Resolves once MQTT.js saw the connection close. */
function closed(client: { once(ev: 'close', fn: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => client.once('close', () => resolve()));
}

describe('logs of the petrel command (JSON on a pipe)', () => {
  const files = new TempFiles();
  let p: PetrelProcess;
  let url: string;

  before(async () => {
    const passwd = files.write('passwd', passwordFileText({ alice: PASSWORD }));
    p = await startPetrel(['--memory', '--password-file', passwd]);
    url = `mqtt://127.0.0.1:${p.port}`;
  });

  after(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) await kill(p, 'SIGTERM');
    files.remove();
  });

  it('client.connected and client.disconnected (a normal DISCONNECT) carry the connection fields', T, async () => {
    const clientId = uniqueId('logs-normal');
    const c = await connectMqtt(url, { clientId, username: 'alice', password: PASSWORD, protocolVersion: 5, keepalive: 30, clean: true });
    const local = `127.0.0.1:${(c.client.stream as unknown as { localPort: number }).localPort}`;
    const conn = await waitEvent(p, 'client.connected', (r) => r.clientId === clientId);
    assert.equal(conn.level, 30, 'info');
    assert.equal(conn.username, 'alice');
    assert.equal(conn.remoteAddress, local);
    assert.equal(conn.transport, 'tcp');
    assert.equal(typeof conn.listener, 'string');
    assert.equal(conn.protocolVersion, 5);
    assert.equal(conn.keepAlive, 30);
    assert.equal(conn.cleanStart, true);
    assert.equal(conn.sessionPresent, false);
    await c.client.endAsync();
    const gone = await waitEvent(p, 'client.disconnected', (r) => r.clientId === clientId);
    assert.equal(gone.level, 30);
    assert.equal(gone.reason, 'client_disconnect');
    assert.equal(gone.reasonCode, 0);
    assert.equal(gone.remoteAddress, local);
  });

  it('a wrong password gives auth.failed and client.connect_refused (0x86); no password is ever logged', T, async () => {
    const clientId = uniqueId('logs-bad');
    await assert.rejects(connectMqtt(url, { clientId, username: 'alice', password: WRONG, protocolVersion: 5 }));
    const failed = await waitEvent(p, 'auth.failed', (r) => r.clientId === clientId);
    assert.equal(failed.username, 'alice');
    assert.equal(failed.reasonCode, 0x86);
    const refused = await waitEvent(p, 'client.connect_refused', (r) => r.clientId === clientId);
    assert.equal(refused.reasonCode, 0x86);
    assert.equal(refused.reason, 'BadUserNameOrPassword');
    // 3.1.1 too, and a good login, then look at everything written so far.
    await assert.rejects(connectMqtt(url, { clientId: uniqueId('logs-bad4'), username: 'alice', password: WRONG, protocolVersion: 4 }));
    const ok = await connectMqtt(url, { clientId: uniqueId('logs-ok4'), username: 'alice', password: PASSWORD, protocolVersion: 4 });
    await ok.client.endAsync();
    await waitEvent(p, 'client.disconnected', (r) => typeof r.clientId === 'string' && r.clientId.startsWith('logs-ok4'));
    assert.ok(!p.log().includes(PASSWORD), 'the right password is not in the log');
    assert.ok(!p.log().includes(WRONG), 'the wrong password is not in the log');
  });

  it('a keep alive that runs out gives client.disconnected with reason keepalive_timeout', T, async () => {
    const clientId = uniqueId('logs-ka');
    // A raw client: CONNECT with keep alive 1 s, then silence (MQTT.js would send PINGREQ).
    const { client } = await RawClient.connect(p.port, 4, { clientId, keepAlive: 1, username: 'alice', password: Buffer.from(PASSWORD) });
    try {
      const conn = await waitEvent(p, 'client.connected', (r) => r.clientId === clientId);
      assert.equal(conn.keepAlive, 1);
      assert.equal(conn.protocolVersion, 4);
      const gone = await waitEvent(p, 'client.disconnected', (r) => r.clientId === clientId, 8000);
      assert.equal(gone.reason, 'keepalive_timeout');
      assert.equal(gone.reasonCode, 0x8d);
    } finally {
      client.socket.destroy();
    }
  });

  it('a takeover gives session.taken_over and client.disconnected with reason taken_over for the old connection', T, async () => {
    const clientId = uniqueId('logs-take');
    const first = await connectMqtt(url, { clientId, username: 'alice', password: PASSWORD, protocolVersion: 5 });
    const firstClosed = closed(first.client);
    const firstAddr = `127.0.0.1:${(first.client.stream as unknown as { localPort: number }).localPort}`;
    await waitEvent(p, 'client.connected', (r) => r.clientId === clientId);
    const second = await connectMqtt(url, { clientId, username: 'alice', password: PASSWORD, protocolVersion: 5, clean: false });
    const secondAddr = `127.0.0.1:${(second.client.stream as unknown as { localPort: number }).localPort}`;
    try {
      await firstClosed;
      const take = await waitEvent(p, 'session.taken_over', (r) => r.clientId === clientId);
      assert.equal(take.previousRemoteAddress, firstAddr);
      assert.equal(take.remoteAddress, secondAddr);
      const gone = await waitEvent(p, 'client.disconnected', (r) => r.clientId === clientId);
      assert.equal(gone.reason, 'taken_over');
      assert.equal(gone.reasonCode, 0x8e);
      assert.equal(gone.remoteAddress, firstAddr, 'the old connection is the one that went');
      const connects = logRecords(p.log()).filter((r) => r.event === 'client.connected' && r.clientId === clientId);
      assert.equal(connects.length, 2);
      assert.equal(connects[1]!.cleanStart, false);
    } finally {
      first.client.end(true);
      await second.client.endAsync();
    }
  });

  it('every line is a JSON record with level, time and msg, and an event at info and above; SIGTERM logs the stop', T, async () => {
    assert.deepEqual(await kill(p, 'SIGTERM'), { code: 0, signal: null });
    const text = p.log();
    const lines = text.split('\n').filter((l) => l !== '');
    assert.ok(lines.length >= 10, text);
    const events = new Set<string>();
    for (const line of lines) {
      const r = parseLogLine(line);
      assert.ok(r !== null, `not a JSON log record: ${line}`);
      assert.equal(typeof r.level, 'number', line);
      assert.equal(typeof r.time, 'number', line);
      assert.ok(Math.abs(r.time - Date.now()) < 120_000, line);
      assert.equal(typeof r.msg, 'string', line);
      if (r.level >= 30) {
        assert.match(String(r.event), /^[a-z]+\.[a-z_]+$/, `an event name: ${line}`);
        events.add(r.event!);
      }
    }
    for (const e of ['store.opened', 'listener.listening', 'broker.started', 'client.connected', 'client.disconnected',
      'auth.failed', 'client.connect_refused', 'session.taken_over', 'process.signal', 'broker.stopping', 'broker.stopped']) {
      assert.ok(events.has(e), `${e} in ${[...events].join(', ')}`);
    }
    const started = findEvent(text, 'broker.started')!;
    assert.equal(typeof started.version, 'string');
    assert.ok(!text.includes(PASSWORD) && !text.includes(WRONG), 'no password');
  });
});

describe('--log-format and --log-level of the petrel command', () => {
  it('--log-format pretty writes human lines, not JSON (no colours on a pipe)', T, async () => {
    const [port] = await freePorts(1);
    const p = new LineProcess(process.execPath, [CLI, '--port', String(port), '--host', '127.0.0.1', '--memory', '--log-format', 'pretty'], {
      env: { PATH: process.env.PATH },
    });
    try {
      const line = await p.waitForLine((l) => /listener\.listening/.test(l), 10_000, 'the listening line', true);
      assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z INFO +listener\\.listening +listening .*port=${port}\\b`));
      const c = await connectMqtt(`mqtt://127.0.0.1:${port}`, { clientId: 'pretty-client' });
      await c.client.endAsync();
      await p.waitForLine((l) => /client\.disconnected .*clientId=pretty-client .*reason=client_disconnect/.test(l), 10_000, 'the disconnect line', true);
      p.child.kill('SIGTERM');
      await p.exit(10_000);
      assert.equal(p.exitCode, 0);
      for (const l of p.errLines.filter((x) => x !== '')) {
        assert.equal(parseLogLine(l), null, `not JSON: ${l}`);
        assert.doesNotMatch(l, /\x1b\[/, 'no ANSI colours when stderr is not a terminal');
        assert.match(l, /^\S+Z (INFO|WARN|ERROR|DEBUG) /, l);
      }
    } finally {
      if (!p.exited) p.child.kill('SIGKILL');
    }
  });

  it('--log-level warn leaves connection events (info) out', T, async () => {
    const [port] = await freePorts(1);
    const p = new LineProcess(process.execPath, [CLI, '--port', String(port), '--host', '127.0.0.1', '--memory', '--log-level', 'warn'], {
      env: { PATH: process.env.PATH },
    });
    try {
      // Nothing is logged at warn when all is well: wait for the port instead.
      let c;
      const end = Date.now() + 10_000;
      for (;;) {
        try {
          c = await connectMqtt(`mqtt://127.0.0.1:${port}`, { clientId: 'quiet-client' }, 1000);
          break;
        } catch (err) {
          if (Date.now() > end || p.exited) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await c.client.endAsync();
      // Give the disconnect time to be logged, were it logged.
      await new Promise((r) => setTimeout(r, 200));
      p.child.kill('SIGTERM');
      await p.exit(10_000);
      assert.equal(p.exitCode, 0);
      const records = logRecords(p.stderr);
      assert.deepEqual(records.filter((r) => r.level < 40), [], 'no info or debug record');
      assert.ok(!p.stderr.includes('quiet-client'), p.stderr);
    } finally {
      if (!p.exited) p.child.kill('SIGKILL');
    }
  });
});

describe('loggers in the API', () => {
  it('a pino instance passed as `logger` gets our fields (fields first, message second)', T, async () => {
    const lines: string[] = [];
    const instance = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const broker = await createBroker({ store: { type: 'memory' }, listeners: [{ port: 0, host: '127.0.0.1' }], sysInterval: 0, logger: instance });
    try {
      const [addr] = await broker.listen();
      const c = await connectMqtt(`mqtt://127.0.0.1:${addr!.port}`, { clientId: 'pino-client' });
      await c.client.endAsync();
      const end = Date.now() + 5000;
      while (!lines.some((l) => l.includes('"client.disconnected"')) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await broker.close();
    }
    const text = lines.join('');
    const listening = findEvent(text, 'listener.listening')!;
    assert.equal(listening.msg, 'listening');
    assert.equal(listening.transport, 'tcp');
    assert.equal(findEvent(text, 'client.connected')?.clientId, 'pino-client');
    assert.equal(findEvent(text, 'client.disconnected')?.reason, 'client_disconnect');
    assert.ok(findEvent(text, 'broker.stopped'));
  });

  it('an HTTP token and v5 authentication data are never logged, even at debug', T, async () => {
    const lines: string[] = [];
    const TOKEN = 'metrics-t0ken-never-logged';
    const AUTH_DATA = 'auth-d4ta-never-logged';
    const logger = createLogger('debug', { format: 'json', destination: { write: (s: string) => lines.push(s) } });
    const broker = await createBroker({
      store: { type: 'memory' },
      listeners: [{ port: 0, host: '127.0.0.1' }],
      sysInterval: 0,
      http: { port: 0, host: '127.0.0.1', token: TOKEN },
      logger,
      authMethods: { SECRET: (req) => (req.data?.toString() === AUTH_DATA ? { result: 'success' } : { result: 'fail' }) },
    });
    try {
      const [addr] = await broker.listen();
      const http = broker.httpAddress!;
      const wrong = await fetch(`http://127.0.0.1:${http.port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}x` } });
      assert.equal(wrong.status, 401);
      const right = await fetch(`http://127.0.0.1:${http.port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(right.status, 200);
      await right.text();
      const murl = `mqtt://127.0.0.1:${addr!.port}`;
      const ok = await connectMqtt(murl, { clientId: 'auth-ok', protocolVersion: 5, properties: { authenticationMethod: 'SECRET', authenticationData: Buffer.from(AUTH_DATA) } });
      await ok.client.endAsync();
      await assert.rejects(
        connectMqtt(murl, { clientId: 'auth-bad', protocolVersion: 5, properties: { authenticationMethod: 'SECRET', authenticationData: Buffer.from(AUTH_DATA + 'x') } }),
      );
      const end = Date.now() + 5000;
      while (!lines.some((l) => l.includes('"auth.failed"')) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await broker.close();
    }
    const text = lines.join('');
    assert.equal(findEvent(text, 'auth.failed')?.method, 'SECRET', text);
    assert.ok(findEvent(text, 'client.connected', (r) => r.clientId === 'auth-ok'));
    assert.ok(!text.includes(TOKEN), 'the token is not in the log');
    assert.ok(!text.includes(AUTH_DATA), 'the authentication data is not in the log');
    assert.ok(!text.includes(Buffer.from(AUTH_DATA).toString('base64')), 'not even in base64');
  });

  it('a level that is off is a no-op, and debugEnabled tells hot paths to skip their fields', () => {
    const lines: string[] = [];
    const dest = { write: (s: string) => lines.push(s) };
    const info = createLogger('info', { format: 'json', destination: dest });
    assert.equal(info.debugEnabled, false);
    assert.equal(info.infoEnabled, true);
    assert.equal(createLogger('warn', { format: 'json', destination: dest }).infoEnabled, false);
    info.debug('not written', { event: 'x.y' });
    info.info('written', { event: 'x.y', n: 1 });
    assert.equal(lines.length, 1);
    assert.deepEqual((({ level, event, n, msg }) => ({ level, event, n, msg }))(JSON.parse(lines[0]!)), { level: 30, event: 'x.y', n: 1, msg: 'written' });
    assert.equal(createLogger('debug', { format: 'json', destination: dest }).debugEnabled, true);
    const silent = createLogger('silent', { format: 'pretty', destination: dest });
    silent.error('nothing', { event: 'x.y' });
    assert.equal(lines.length, 1);
    const pretty = createLogger('info', { format: 'pretty', destination: dest });
    pretty.warn('careful', { event: 'a.b', who: 'some one', n: 2 });
    assert.match(lines[1]!, /^\S+Z WARN +a\.b +careful who="some one" n=2\n$/);
  });
});

describe('the log calls in src/', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : n.endsWith('.ts') ? [join(dir, n)] : []));

  it('every logger.info/warn/error call names its event', () => {
    const missing: string[] = [];
    let calls = 0;
    for (const f of files(root)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/logger\??\.(info|warn|error)\(/g)) {
        // The call's text up to its closing parenthesis (balanced).
        let depth = 0;
        let i = m.index! + m[0].length - 1;
        for (; i < text.length; i++) {
          if (text[i] === '(') depth++;
          else if (text[i] === ')' && --depth === 0) break;
        }
        const call = text.slice(m.index!, i + 1);
        calls++;
        // A literal event, or the admin API's audit events (admin.<action>, one call for every action).
        if (!/\bevent: ('[a-z]+\.[a-z_]+'|`admin\.\$\{action\}`)/.test(call)) missing.push(`${f.slice(root.length + 1)}: ${call.slice(0, 120)}`);
      }
    }
    assert.ok(calls >= 40, `found ${calls} calls`);
    assert.deepEqual(missing, []);
  });
});
