// `petrel --http-port N` (issue 11): the HTTP listener with /metrics and the health probes, from the command
// line, on loopback by default; `--sys-interval`; `--http-host` without `--http-port` is a clear error.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, freePorts, startCli, stopCli } from './cli-process.js';
import { connectMqtt, endAll } from '../helpers/mqttjs.js';
import { findEvent } from '../helpers/log-lines.js';

const run = promisify(execFile);

describe('petrel --http-port', () => {
  it('serves /readyz and /metrics on 127.0.0.1, counting what a real client did', async () => {
    const [mqttPort, httpPort] = await freePorts(2);
    const p = await startCli(['--memory', '--port', String(mqttPort), '--http-port', String(httpPort), '--sys-interval', '0'], [mqttPort!, httpPort!]);
    try {
      assert.equal(findEvent(p.stderr, 'listener.listening', (r) => r.transport === 'http')?.host, '127.0.0.1', p.stderr);
      const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      assert.equal(ready.status, 200);
      const c = await connectMqtt(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 5 });
      await c.client.publishAsync('cli/http', 'x', { qos: 1 });
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      assert.match(text, /^petrel_messages_received_total\{qos="1"\} 1$/m);
      assert.match(text, /^petrel_connections\{[^}]*proto="5"[^}]*\} 1$/m);
      await endAll(c.client);
    } finally {
      assert.equal(await stopCli(p), 0);
    }
  });

  it('--http-host without --http-port exits 2 naming the flag', async () => {
    await assert.rejects(run(process.execPath, [CLI, '--memory', '--http-host', '127.0.0.1']), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /--http-host: needs --http-port/);
      return true;
    });
  });
});
