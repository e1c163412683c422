// Helpers of the auth tests: password and ACL files in a temporary directory, and a CONNECT from a chosen
// loopback source address (127.0.0.2 ...) to tell "attacker" and "healthy client" apart for the login guard.

import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePacket } from '../../src/protocol/encoder.js';
import type { ProtocolVersion } from '../../src/protocol/packets.js';
import { formatEntry, makeHashText } from '../../src/auth/password-file.js';

export class TempFiles {
  readonly dir = mkdtempSync(join(tmpdir(), 'petrel-auth-'));
  write(name: string, text: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A password file text: $7$ entries (iterations as given) for user → password. */
export function passwordFileText(users: Record<string, string>, iterations = 101): string {
  return Object.entries(users).map(([u, p]) => formatEntry(u, makeHashText(p, iterations))).join('\n') + '\n';
}

/**
 * Open a TCP connection from `localAddress`, send CONNECT, and give the CONNACK reason code (v5) / return code
 * (3.1.1), or -1 if the connection closed without one. Bounded by ms.
 */
export function connackFrom(
  port: number,
  localAddress: string,
  opts: { version?: ProtocolVersion; clientId?: string; username?: string; password?: Buffer },
  ms = 5000,
): Promise<number> {
  const version = opts.version ?? 4;
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(-2), ms);
    const done = (v: number): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    socket.on('connect', () => {
      const p = {
        type: 1 as const,
        protocolName: 'MQTT',
        protocolVersion: version,
        clean: true,
        keepAlive: 30,
        clientId: opts.clientId ?? `guard-${Math.random().toString(36).slice(2)}`,
        ...(opts.username !== undefined ? { username: opts.username } : {}),
        ...(opts.password !== undefined ? { password: opts.password } : {}),
      };
      socket.write(encodePacket(p, version));
    });
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      // CONNACK: 0x20, remaining length, flags, code.
      if (buf.length >= 4 && buf[0] === 0x20) done(buf[3]!);
    });
    socket.on('error', () => done(-1));
    socket.on('close', () => done(-1));
  });
}
