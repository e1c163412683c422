// `petrel --mosquitto-config`: each supported directive of mosquitto.conf(5) and its mapping to Petrel's options,
// listener scoping as in Mosquitto's conf.c, include_dir order, and every other directive reported by name and
// line (an error, or a warning with --lenient). Parsing only: the end-to-end run is in mosquitto-e2e.test.ts.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareIncludeNames, logLevelOf, MESSAGE_SIZE_HEADROOM, readMosquittoConfig, type MosquittoConfig } from '../../src/cli/mosquitto-config.js';
import { ConfigError, loadConfig, toBrokerOptions } from '../../src/cli/config.js';

const tmp = mkdtempSync(join(tmpdir(), 'petrel-mosq-conf-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** Write a mosquitto.conf (lines joined by \n) in a directory of its own; returns its path. */
function conf(lines: string[], name = 'mosquitto.conf'): string {
  const dir = join(tmp, `c${++n}`);
  mkdirSync(dir);
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const read = (lines: string[], lenient = false): MosquittoConfig => readMosquittoConfig(conf(lines), { lenient });

/** The ConfigError message for a file, with the file's path replaced by FILE. */
function errorOf(lines: string[]): string {
  const file = conf(lines);
  try {
    readMosquittoConfig(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    return err.message.split(file).join('FILE');
  }
  assert.fail('no error');
}

describe('mosquitto.conf: directives and their mapping', () => {
  it('listener PORT [ADDRESS]: one listener each, in file order, plain TCP by default', () => {
    const m = read(['listener 1884', 'listener 1885 127.0.0.1', 'listener 1886 ::1']);
    assert.deepEqual(m.listeners, [
      { transport: 'tcp', port: 1884 },
      { transport: 'tcp', port: 1885, host: '127.0.0.1' },
      { transport: 'tcp', port: 1886, host: '::1' },
    ]);
  });

  it('port and bind_address make the default listener, placed after the listener lines as Mosquitto does', () => {
    assert.deepEqual(read(['port 1999']).listeners, [{ transport: 'tcp', port: 1999 }]);
    assert.deepEqual(read(['bind_address 127.0.0.1']).listeners, [{ transport: 'tcp', port: 1883, host: '127.0.0.1' }]);
    assert.deepEqual(read(['port 1999', 'bind_address 127.0.0.1', 'listener 1884']).listeners, [
      { transport: 'tcp', port: 1884 },
      { transport: 'tcp', port: 1999, host: '127.0.0.1' },
    ]);
  });

  it('each listener knows its line (listenerSources), the default listener says what made it', () => {
    const file = conf(['port 1999', 'listener 1884']);
    assert.deepEqual(readMosquittoConfig(file).listenerSources, [`${file}:2: listener`, `${file}: the default listener (port, bind_address or settings before the first listener line)`]);
  });

  it('port given twice: the last one is used, with a warning (as Mosquitto)', () => {
    const m = read(['port 1999', 'port 2000']);
    assert.deepEqual(m.listeners, [{ transport: 'tcp', port: 2000 }]);
    assert.match(m.warnings.join('\n'), /:2: port: the default listener's port is given again \(line 1\)/);
  });

  it('no listener at all: local only mode, 127.0.0.1:1883 with anonymous clients allowed (Mosquitto 2.0)', () => {
    const m = read(['max_keepalive 60']);
    assert.deepEqual(m.listeners, [{ transport: 'tcp', port: 1883, host: '127.0.0.1' }]);
    assert.equal(m.auth.allowAnonymous, true);
    assert.match(m.warnings.join('\n'), /local only mode/);
  });

  it('with listeners, allow_anonymous defaults to false as in Mosquitto 2.0; allow_anonymous true sets it', () => {
    assert.equal(read(['listener 1884']).auth.allowAnonymous, false);
    assert.equal(read(['listener 1884', 'allow_anonymous true']).auth.allowAnonymous, true);
    assert.equal(read(['allow_anonymous 1', 'listener 1884']).auth.allowAnonymous, true, 'global (per_listener_settings false): position does not matter');
  });

  it('password_file and acl_file: auth.passwordFile and auth.aclFile, relative paths from the file\'s directory', () => {
    const file = conf(['listener 1884', 'password_file passwd', 'acl_file /etc/petrel/acl']);
    const m = readMosquittoConfig(file);
    assert.equal(m.auth.passwordFile, join(file, '..', 'passwd'));
    assert.equal(m.auth.aclFile, '/etc/petrel/acl');
    assert.match(m.sources.get('auth.passwordFile')!, /:2: password_file$/);
  });

  it('a path value is the rest of the line, trimmed (it may hold spaces)', () => {
    assert.equal(read(['listener 1884', 'password_file   /srv/my files/passwd  ']).auth.passwordFile, '/srv/my files/passwd');
  });

  it('certfile + keyfile make a tls listener; cafile, require_certificate, tls_version, ciphers go with it', () => {
    const m = read([
      'listener 8883',
      'certfile /c/server.crt',
      'keyfile /c/server.key',
      'cafile /c/ca.crt',
      'require_certificate true',
      'tls_version tlsv1.3',
      'ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384',
    ]);
    assert.deepEqual(m.listeners, [
      {
        transport: 'tls',
        port: 8883,
        cert: '/c/server.crt',
        key: '/c/server.key',
        ca: '/c/ca.crt',
        requireCertificate: true,
        minVersion: 'TLSv1.3',
        ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384',
      },
    ]);
    assert.equal(read(['listener 8883', 'certfile /a', 'keyfile /b', 'tls_version tlsv1.2']).listeners[0]!.minVersion, 'TLSv1.2');
  });

  it('protocol websockets: a ws listener, or wss with certfile and keyfile; protocol mqtt is plain', () => {
    const m = read(['listener 8080', 'protocol websockets', 'listener 8081', 'protocol websockets', 'certfile /a', 'keyfile /b', 'listener 1884', 'protocol mqtt']);
    assert.deepEqual(m.listeners.map((l) => l.transport), ['ws', 'wss', 'tcp']);
    assert.equal(m.listeners[1]!.cert, '/a');
  });

  it('use_identity_as_username: cn; use_subject_as_username: subject; identity wins when both are set', () => {
    const tls = ['listener 8883', 'certfile /a', 'keyfile /b', 'cafile /ca', 'require_certificate true'];
    assert.equal(read([...tls, 'use_identity_as_username true']).listeners[0]!.identityAsUsername, 'cn');
    assert.equal(read([...tls, 'use_subject_as_username true']).listeners[0]!.identityAsUsername, 'subject');
    assert.equal(read([...tls, 'use_subject_as_username true', 'use_identity_as_username true']).listeners[0]!.identityAsUsername, 'cn');
    assert.equal(read([...tls, 'use_identity_as_username false']).listeners[0]!.identityAsUsername, undefined);
  });

  it('socket_domain ipv4 / ipv6: binds 0.0.0.0 / :: when no address is given', () => {
    assert.equal(read(['listener 1884', 'socket_domain ipv4']).listeners[0]!.host, '0.0.0.0');
    assert.equal(read(['listener 1884', 'socket_domain ipv6']).listeners[0]!.host, '::');
    assert.equal(read(['listener 1884 127.0.0.1', 'socket_domain ipv4']).listeners[0]!.host, '127.0.0.1');
  });

  it('max_connections: per listener; -1 and 0 mean no limit (Mosquitto counts only when > 0)', () => {
    const m = read(['listener 1884', 'max_connections 10', 'listener 1885', 'max_connections -1', 'listener 1886', 'max_connections 0']);
    assert.deepEqual(m.listeners.map((l) => l.maxConnections), [10, undefined, undefined]);
  });

  it('global limits: max_keepalive, max_packet_size, max_inflight_messages, max_queued_messages, max_queued_bytes, retain_available', () => {
    const m = read([
      'listener 1884',
      'max_keepalive 120',
      'max_packet_size 65536',
      'max_inflight_messages 20',
      'max_queued_messages 1000',
      'max_queued_bytes 1048576',
      'retain_available false',
    ]);
    assert.deepEqual(m.limits, {
      maxKeepAlive: 120,
      maxPacketSize: 65536,
      maxInflight: 20,
      maxQueuedMessages: 1000,
      maxQueuedBytes: 1048576,
      retainAvailable: false,
    });
  });

  it('0 means "no maximum" for max_inflight_messages, max_queued_messages and max_queued_bytes, as in Mosquitto', () => {
    const m = read(['listener 1884', 'max_inflight_messages 0', 'max_queued_messages 0', 'max_queued_bytes 0']);
    assert.deepEqual(m.limits, { maxInflight: 65535, maxQueuedMessages: Number.MAX_SAFE_INTEGER, maxQueuedBytes: Number.MAX_SAFE_INTEGER });
  });

  it('message_size_limit: a maximum packet size with room for the header, and a warning that says so', () => {
    const m = read(['listener 1884', 'message_size_limit 1000']);
    assert.equal(m.limits.maxPacketSize, 1000 + MESSAGE_SIZE_HEADROOM);
    assert.match(m.warnings.join('\n'), /:2: message_size_limit: Petrel limits whole packets/);
    // A smaller max_packet_size stays; 0 means no limit.
    assert.equal(read(['listener 1884', 'max_packet_size 500', 'message_size_limit 1000']).limits.maxPacketSize, 500);
    assert.equal(read(['listener 1884', 'message_size_limit 0']).limits.maxPacketSize, undefined);
  });

  it('max_qos: the global maximum QoS when every listener has the same; different ones are an error naming the line', () => {
    assert.equal(read(['listener 1884', 'max_qos 1']).limits.maxQoS, 1);
    assert.equal(read(['listener 1884', 'max_qos 0', 'listener 1885', 'max_qos 0']).limits.maxQoS, 0);
    assert.equal(errorOf(['listener 1884', 'max_qos 1', 'listener 1885', 'max_qos 2']), 'FILE:4: max_qos: differs between listeners; Petrel has one maximum QoS for all listeners');
    assert.match(errorOf(['listener 1884', 'max_qos 1', 'listener 1885']), /^FILE:2: max_qos: differs between listeners/);
  });

  it('persistence false: the memory store; true: SQLite; persistence_location: the data directory', () => {
    assert.equal(read(['listener 1884', 'persistence false']).memory, true);
    assert.equal(read(['listener 1884', 'persistence true']).memory, false);
    assert.equal(read(['listener 1884']).memory, undefined, 'not given: Petrel\'s default (durable)');
    const file = conf(['listener 1884', 'persistence true', 'persistence_location /var/lib/mosquitto/']);
    assert.equal(readMosquittoConfig(file).dataDir, '/var/lib/mosquitto');
    const rel = conf(['listener 1884', 'persistence_location data/']);
    assert.equal(readMosquittoConfig(rel).dataDir, join(rel, '..', 'data'));
  });

  it('log_type: the most verbose type given sets the log level; none is silent', () => {
    assert.equal(read(['listener 1884', 'log_type error']).logLevel, 'error');
    assert.equal(read(['listener 1884', 'log_type error', 'log_type warning']).logLevel, 'warn');
    assert.equal(read(['listener 1884', 'log_type notice']).logLevel, 'info');
    assert.equal(read(['listener 1884', 'log_type information']).logLevel, 'info');
    assert.equal(read(['listener 1884', 'log_type all']).logLevel, 'debug');
    assert.equal(read(['listener 1884', 'log_type subscribe']).logLevel, 'debug');
    assert.equal(read(['listener 1884', 'log_type none']).logLevel, 'silent');
    assert.equal(read(['listener 1884', 'log_type debug', 'log_type none']).logLevel, 'silent', 'none replaces the set');
    assert.equal(read(['listener 1884']).logLevel, undefined);
    assert.equal(logLevelOf(new Set(['warning', 'error'])), 'warn');
  });

  it('comments, blank lines, CRLF line ends and "# text" after a one-word value', () => {
    const m = read(['# a comment', '', '   ', '  # indented comment', 'listener 1884 # the main one\r', 'max_keepalive 60 # seconds']);
    assert.deepEqual(m.listeners, [{ transport: 'tcp', port: 1884 }]);
    assert.equal(m.limits.maxKeepAlive, 60);
  });
});

describe('mosquitto.conf: listener scoping (conf.c)', () => {
  it('listener settings apply to the listener line they follow, not to the others', () => {
    const m = read([
      'listener 1884',
      'listener 8883',
      'certfile /s.crt',
      'keyfile /s.key',
      'max_connections 5',
      'listener 8080',
      'protocol websockets',
      'listener 1885',
    ]);
    assert.deepEqual(m.listeners, [
      { transport: 'tcp', port: 1884 },
      { transport: 'tls', port: 8883, cert: '/s.crt', key: '/s.key', maxConnections: 5 },
      { transport: 'ws', port: 8080 },
      { transport: 'tcp', port: 1885 },
    ]);
  });

  it('listener settings before the first listener line belong to the default listener, which they create', () => {
    const m = read(['certfile /s.crt', 'keyfile /s.key', 'listener 1884']);
    assert.deepEqual(m.listeners, [
      { transport: 'tcp', port: 1884 },
      { transport: 'tls', port: 1883, cert: '/s.crt', key: '/s.key' },
    ]);
  });

  it('port and bind_address always set the default listener, even after a listener line', () => {
    const m = read(['listener 1884', 'port 1999']);
    assert.deepEqual(m.listeners, [{ transport: 'tcp', port: 1884 }, { transport: 'tcp', port: 1999 }]);
  });

  it('two listeners on the same port and address are an error naming the second line', () => {
    assert.equal(errorOf(['listener 1884', 'listener 1884']), 'FILE:2: listener: port 1884 is already a listener (line 1)');
  });
});

describe('mosquitto.conf: include_dir', () => {
  it('reads the *.conf files in Mosquitto\'s order: case-insensitive, upper case first on a tie', () => {
    const main = conf(['include_dir conf.d']);
    const dir = join(main, '..', 'conf.d');
    mkdirSync(dir);
    // The example of mosquitto.conf(5): b.conf, A.conf, 01.conf, a.conf, B.conf and 00.conf load as
    // 00, 01, A, a, B, b. Each file adds a listener with a port that says which file it is.
    const ports: Record<string, number> = { 'b.conf': 2006, 'A.conf': 2003, '01.conf': 2002, 'a.conf': 2004, 'B.conf': 2005, '00.conf': 2001 };
    for (const [name, port] of Object.entries(ports)) writeFileSync(join(dir, name), `listener ${port}\n`);
    writeFileSync(join(dir, 'ignored.txt'), 'listener 2999\n');
    writeFileSync(join(dir, '.conf'), 'listener 2998\n');
    const m = readMosquittoConfig(main);
    assert.deepEqual(m.listeners.map((l) => l.port), [2001, 2002, 2003, 2004, 2005, 2006]);
    assert.deepEqual(['b.conf', 'A.conf', '01.conf', 'a.conf', 'B.conf', '00.conf'].sort(compareIncludeNames), ['00.conf', '01.conf', 'A.conf', 'a.conf', 'B.conf', 'b.conf']);
  });

  it('several include_dir lines are read one after the other, in the order written', () => {
    const main = conf(['include_dir one.d', 'include_dir two.d']);
    for (const [d, files] of [['one.d', { 'B.conf': 3002, 'C.conf': 3003 }], ['two.d', { 'A.conf': 3001, 'D.conf': 3004 }]] as const) {
      mkdirSync(join(main, '..', d));
      for (const [f, p] of Object.entries(files)) writeFileSync(join(main, '..', d, f), `listener ${p}\n`);
    }
    assert.deepEqual(readMosquittoConfig(main).listeners.map((l) => l.port), [3002, 3003, 3001, 3004]);
  });

  it('each included file starts with the default listener: its listener settings do not go to the main file\'s listener', () => {
    const main = conf(['listener 1884', 'include_dir d', 'max_connections 7']);
    mkdirSync(join(main, '..', 'd'));
    writeFileSync(join(main, '..', 'd', 'tls.conf'), 'certfile /s.crt\nkeyfile /s.key\n');
    const m = readMosquittoConfig(main);
    assert.deepEqual(m.listeners, [
      { transport: 'tcp', port: 1884, maxConnections: 7 },
      { transport: 'tls', port: 1883, cert: '/s.crt', key: '/s.key' },
    ]);
  });

  it('an error in an included file names that file and its line', () => {
    const main = conf(['listener 1884', 'include_dir d']);
    mkdirSync(join(main, '..', 'd'));
    const inc = join(main, '..', 'd', 'x.conf');
    writeFileSync(inc, '\n\nmax_qos 7\n');
    assert.throws(() => readMosquittoConfig(main), (err: Error) => err.message === `${inc}:3: max_qos: must be 0, 1 or 2, got 7`);
  });

  it('include_dir inside an included file is reported (Mosquitto reads it only in the main file)', () => {
    const main = conf(['listener 1884', 'include_dir d']);
    mkdirSync(join(main, '..', 'd'));
    const inc = join(main, '..', 'd', 'x.conf');
    writeFileSync(inc, 'include_dir /etc\n');
    assert.throws(() => readMosquittoConfig(main), new RegExp(`^ConfigError: ${inc}:1: include_dir: include_dir is read only in the main`));
    assert.match(readMosquittoConfig(main, { lenient: true }).warnings.join('\n'), /x\.conf:1: include_dir: .*skipped \(--lenient\)/);
  });

  it('a missing include_dir is an error naming the line', () => {
    assert.match(errorOf(['listener 1884', 'include_dir /nonexistent/petrel']), /^FILE:2: include_dir: cannot read the directory \/nonexistent\/petrel: ENOENT$/);
  });
});

describe('mosquitto.conf: everything else is reported by name and line', () => {
  it('an unknown directive is an error with its name and line', () => {
    assert.equal(errorOf(['listener 1884', '', 'frobnicate yes']), 'FILE:3: frobnicate: unknown directive (petrel --lenient skips it with a warning)');
  });

  it('a Mosquitto directive Petrel does not support is an error saying so', () => {
    assert.equal(errorOf(['listener 1884', 'capath /etc/ssl/certs']), 'FILE:2: capath: a Mosquitto directive that Petrel does not support (petrel --lenient skips it with a warning)');
    assert.match(errorOf(['listener 1884', 'auth_opt_db_host localhost']), /^FILE:2: auth_opt_db_host: a Mosquitto directive/);
    assert.match(errorOf(['log_dest stderr', 'listener 1884']), /^FILE:1: log_dest: a Mosquitto directive/);
  });

  it('with --lenient they are warnings naming directive and line, and the rest of the file is read', () => {
    const m = read(['listener 1884', 'frobnicate yes', 'mount_point x/', 'max_keepalive 60'], true);
    assert.equal(m.limits.maxKeepAlive, 60);
    assert.deepEqual(m.warnings.map((w) => w.replace(/^.*mosquitto\.conf/, 'FILE')), [
      'FILE:2: frobnicate: unknown directive; skipped (--lenient)',
      'FILE:3: mount_point: a Mosquitto directive that Petrel does not support; skipped (--lenient)',
    ]);
  });

  it('--lenient does not excuse an invalid value of a supported directive', () => {
    assert.throws(() => read(['listener 1884', 'max_qos 9'], true), /:2: max_qos: must be 0, 1 or 2, got 9/);
  });
});

describe('mosquitto.conf: invalid values name the directive and the line', () => {
  const cases: [string, string[], string][] = [
    ['a port that is not a number', ['listener abc'], 'FILE:1: listener: port must be an integer from 1 to 65535, got "abc"'],
    ['a port out of range', ['listener 70000'], 'FILE:1: listener: port must be an integer from 1 to 65535, got "70000"'],
    ['a Unix socket listener', ['listener 0 /run/mosquitto.sock'], 'FILE:1: listener: port 0 is a Unix socket listener in Mosquitto; Petrel has none'],
    ['listener without a port', ['listener'], 'FILE:1: listener: needs a port'],
    ['port 0', ['port 0'], 'FILE:1: port: must be an integer from 1 to 65535, got 0'],
    ['a boolean that is not true/false/1/0', ['listener 1884', 'allow_anonymous yes'], 'FILE:2: allow_anonymous: must be true or false, got "yes"'],
    ['require_certificate maybe', ['listener 1884', 'require_certificate maybe'], 'FILE:2: require_certificate: must be true or false, got "maybe"'],
    ['an unknown protocol', ['listener 1884', 'protocol http'], 'FILE:2: protocol: must be mqtt or websockets, got "http"'],
    ['an unknown socket_domain', ['listener 1884', 'socket_domain ipv5'], 'FILE:2: socket_domain: must be ipv4 or ipv6, got "ipv5"'],
    ['socket_domain against the address', ['listener 1884 127.0.0.1', 'socket_domain ipv6'], 'FILE:2: socket_domain: the listener of line 1 binds 127.0.0.1, not an ipv6 address'],
    ['tls_version tlsv1.1', ['listener 8883', 'certfile /a', 'keyfile /b', 'tls_version tlsv1.1'], 'FILE:4: tls_version: tlsv1.1 is not supported: Petrel accepts TLS 1.2 and 1.3 only (use tlsv1.2)'],
    ['an unknown tls_version', ['listener 8883', 'certfile /a', 'keyfile /b', 'tls_version sslv3'], 'FILE:4: tls_version: must be tlsv1.2 or tlsv1.3, got "sslv3"'],
    ['max_keepalive below 10', ['listener 1884', 'max_keepalive 5'], 'FILE:2: max_keepalive: must be an integer from 10 to 65535, got 5'],
    ['max_packet_size below 20', ['listener 1884', 'max_packet_size 19'], 'FILE:2: max_packet_size: must be an integer from 20 to 268435460, got 19'],
    ['max_inflight_messages above 65535', ['listener 1884', 'max_inflight_messages 70000'], 'FILE:2: max_inflight_messages: must be at most 65535, got 70000'],
    ['message_size_limit above the MQTT maximum', ['listener 1884', 'message_size_limit 268435456'], 'FILE:2: message_size_limit: must be an integer from 0 to 268435455, got 268435456'],
    ['max_qos 3', ['listener 1884', 'max_qos 3'], 'FILE:2: max_qos: must be 0, 1 or 2, got 3'],
    ['an integer with a unit', ['listener 1884', 'max_keepalive 60 s'], 'FILE:2: max_keepalive: takes one value, got "60 s"'],
    ['an integer that is not one', ['listener 1884', 'max_queued_messages many'], 'FILE:2: max_queued_messages: must be an integer, got "many"'],
    ['an unknown log_type', ['listener 1884', 'log_type loud'], 'FILE:2: log_type: must be one of none, information, notice, warning, error, debug, subscribe, unsubscribe, websockets, internal, all, got "loud"'],
    ['an empty value', ['listener 1884', 'password_file'], 'FILE:2: password_file: needs a value'],
    ['password_file twice (Mosquitto: duplicate value)', ['listener 1884', 'password_file /a', 'password_file /b'], 'FILE:3: password_file: given twice (first at FILE:2)'],
    ['certfile twice on one listener', ['listener 8883', 'certfile /a', 'certfile /b'], 'FILE:3: certfile: given twice (first at FILE:2)'],
    ['certfile without keyfile', ['listener 8883', 'certfile /a'], 'FILE:2: certfile: the listener of line 1 has certfile but no keyfile; TLS needs both'],
    ['keyfile without certfile', ['listener 8883', 'keyfile /a'], 'FILE:2: keyfile: the listener of line 1 has keyfile but no certfile; TLS needs both'],
    ['cafile on a listener without TLS', ['listener 1884', 'cafile /ca'], 'FILE:2: cafile: the listener of line 1 has no TLS (certfile and keyfile): this setting would have no effect'],
    ['require_certificate without cafile', ['listener 8883', 'certfile /a', 'keyfile /b', 'require_certificate true'], 'FILE:4: require_certificate: the listener of line 1 requires client certificates but has no cafile to check them against'],
    ['use_identity_as_username without require_certificate', ['listener 8883', 'certfile /a', 'keyfile /b', 'use_identity_as_username true'], 'FILE:4: use_identity_as_username: the listener of line 1 needs require_certificate true for the certificate to give the username'],
  ];
  for (const [what, lines, message] of cases) {
    it(what, () => assert.equal(errorOf(lines), message));
  }

  it('a file that cannot be read names --mosquitto-config', () => {
    assert.throws(() => readMosquittoConfig(join(tmp, 'nope.conf')), /^ConfigError: --mosquitto-config: cannot read .*nope\.conf: ENOENT$/);
  });
});

describe('mosquitto.conf: per_listener_settings', () => {
  it('true with the same authentication on every listener: accepted, global in Petrel', () => {
    const m = read([
      'per_listener_settings true',
      'listener 1884',
      'password_file /p',
      'allow_anonymous false',
      'listener 8080',
      'protocol websockets',
      'password_file /p',
      'allow_anonymous false',
    ]);
    assert.deepEqual(m.auth, { passwordFile: '/p', allowAnonymous: false });
  });

  it('true with different authentication per listener: an error naming the line (Petrel\'s authentication is global)', () => {
    assert.equal(
      errorOf(['per_listener_settings true', 'listener 1884', 'allow_anonymous true', 'listener 1885', 'password_file /p', 'allow_anonymous true']),
      "FILE:5: password_file: per_listener_settings true with a different password_file per listener: Petrel's authentication is the same for all listeners",
    );
    assert.match(
      errorOf(['per_listener_settings true', 'listener 1884', 'allow_anonymous true', 'listener 1885']),
      /^FILE:3: allow_anonymous: per_listener_settings true with a different allow_anonymous per listener/,
    );
  });

  it('false: the security settings are global wherever they are written', () => {
    const m = read(['per_listener_settings false', 'listener 1884', 'acl_file /acl', 'listener 1885', 'allow_anonymous true']);
    assert.deepEqual(m.auth, { aclFile: '/acl', allowAnonymous: true });
  });

  it('must come before any security setting, as in Mosquitto', () => {
    assert.match(errorOf(['listener 1884', 'password_file /p', 'per_listener_settings true']), /^FILE:3: per_listener_settings: must come before any security setting \(FILE:2: password_file\)/);
  });

  it('with it, a password_file before any listener creates the default listener (conf.c), an allow_anonymous there is reported', () => {
    const m = read(['per_listener_settings true', 'password_file /p']);
    assert.deepEqual(m.listeners, [{ transport: 'tcp', port: 1883 }]);
    assert.equal(m.auth.passwordFile, '/p');
    assert.match(errorOf(['per_listener_settings true', 'allow_anonymous true', 'listener 1884']), /^FILE:2: allow_anonymous: with per_listener_settings true this applies to the default listener, which is not created/);
  });
});

describe('--mosquitto-config with the other settings', () => {
  it('maps to broker options: listeners, auth, limits, store, log level', () => {
    const file = conf([
      'listener 1884 127.0.0.1',
      'password_file /p',
      'acl_file /a',
      'max_keepalive 60',
      'persistence true',
      'persistence_location /var/lib/petrel',
      'log_type warning',
    ]);
    const c = loadConfig(['--mosquitto-config', file], {});
    assert.deepEqual(toBrokerOptions(c), {
      listeners: [{ transport: 'tcp', port: 1884, host: '127.0.0.1' }],
      store: { type: 'sqlite', dataDir: '/var/lib/petrel', durability: 'process' },
      limits: { maxKeepAlive: 60 },
      logLevel: 'warn',
      closeTimeout: 5,
      auth: { passwordFile: '/p', aclFile: '/a', allowAnonymous: false },
    });
    assert.deepEqual(toBrokerOptions(loadConfig(['--mosquitto-config', conf(['listener 1884', 'persistence false'])], {})).store, { type: 'memory' });
  });

  it('flags win over the file: limits, auth, log level, store', () => {
    const file = conf(['listener 1884', 'max_keepalive 60', 'allow_anonymous false', 'log_type error', 'persistence false']);
    const c = loadConfig(['--mosquitto-config', file, '--max-keep-alive', '30', '--allow-anonymous', '--log-level', 'debug', '--memory=false'], {});
    assert.equal(c.limits.maxKeepAlive, 30);
    assert.equal(c.auth?.allowAnonymous, true);
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.memory, false);
  });

  it('the mosquitto.conf wins over PETREL_* variables, the JSON config file over the mosquitto.conf', () => {
    const mfile = conf(['listener 1884', 'max_keepalive 60', 'max_packet_size 1000']);
    const json = join(tmp, 'over.json');
    writeFileSync(json, JSON.stringify({ limits: { maxPacketSize: 2000 } }));
    const c = loadConfig(['--config', json], { PETREL_MOSQUITTO_CONFIG: mfile, PETREL_MAX_KEEP_ALIVE: '90', PETREL_MAX_INFLIGHT: '5' });
    assert.equal(c.limits.maxKeepAlive, 60, 'mosquitto.conf over env');
    assert.equal(c.limits.maxPacketSize, 2000, 'JSON file over mosquitto.conf');
    assert.equal(c.limits.maxInflight, 5, 'env where nothing else says');
  });

  it('--port on the command line replaces the listeners of the mosquitto.conf', () => {
    const file = conf(['listener 1884', 'listener 8080', 'protocol websockets']);
    assert.deepEqual(loadConfig(['--mosquitto-config', file, '--port', '1999'], {}).listeners, [{ transport: 'tcp', port: 1999 }]);
    assert.deepEqual(loadConfig(['--mosquitto-config', file], { PETREL_PORT: '1999' }).listeners.map((l) => l.port), [1884, 8080], 'the file wins over the environment');
  });

  it('--host alone cannot apply to the listeners of the file: an error, not ignored', () => {
    const file = conf(['listener 1884']);
    assert.throws(() => loadConfig(['--mosquitto-config', file, '--host', '127.0.0.1'], {}), /^ConfigError: --host: the listeners come from .*mosquitto\.conf; set it there/);
  });

  it('--lenient is needed for unsupported directives; warnings reach CliConfig.warnings', () => {
    const file = conf(['listener 1884', 'sys_interval 10']);
    assert.throws(() => loadConfig(['--mosquitto-config', file], {}), /:2: sys_interval: a Mosquitto directive that Petrel does not support/);
    const c = loadConfig(['--mosquitto-config', file, '--lenient'], {});
    assert.match(c.warnings.join('\n'), /:2: sys_interval: .*skipped \(--lenient\)/);
    assert.equal(loadConfig(['--mosquitto-config', file], { PETREL_LENIENT: '1' }).warnings.length, 1);
  });

  it('--lenient without --mosquitto-config is an error', () => {
    assert.throws(() => loadConfig(['--lenient'], {}), /^ConfigError: --lenient: applies to --mosquitto-config only$/);
  });

  it('mosquittoConfig in a JSON config file resolves against the JSON file\'s directory', () => {
    const file = conf(['listener 1884'], 'm.conf');
    const json = join(file, '..', 'petrel.json');
    writeFileSync(json, JSON.stringify({ mosquittoConfig: 'm.conf' }));
    assert.deepEqual(loadConfig(['--config', json], {}).listeners, [{ transport: 'tcp', port: 1884 }]);
  });
});
