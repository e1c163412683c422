// Bans of the admin API (POST /api/v1/bans): by client id, user name, or IP address / CIDR. Held in memory only
// (they do not survive a restart, and each node of a cluster has its own). The broker asks at every CONNECT
// (Broker.banned): a banned one is refused with 0x8A Banned (3.1/3.1.1: return code 5).

import { randomBytes } from 'node:crypto';
import { CidrMatcher } from '../../transport/cidr.js';

export type BanKind = 'clientId' | 'username' | 'address';

export interface Ban {
  id: string;
  kind: BanKind;
  value: string;
  reason?: string;
  createdAt: string;
  expiresAt?: string;
}

interface Entry {
  ban: Ban;
  expiresAt: number;
  /** kind 'address': the address or range. */
  matcher: CidrMatcher | null;
}

/** An IP address or a CIDR range ('10.0.0.0/8', '2001:db8::/32'), else null. */
export function addressMatcher(value: string): CidrMatcher | null {
  try {
    return new CidrMatcher([value]);
  } catch {
    return null;
  }
}

export class BanList {
  private readonly entries = new Map<string, Entry>();
  /** Fast paths: how many bans of each kind there are. */
  private readonly kinds = { clientId: 0, username: 0, address: 0 };

  add(kind: BanKind, value: string, matcher: CidrMatcher | null, reason: string | undefined, durationSeconds: number | undefined, now = Date.now()): Ban {
    const ban: Ban = { id: randomBytes(8).toString('hex'), kind, value, createdAt: new Date(now).toISOString() };
    if (reason !== undefined) ban.reason = reason;
    const expiresAt = durationSeconds === undefined ? Infinity : now + durationSeconds * 1000;
    if (durationSeconds !== undefined) ban.expiresAt = new Date(expiresAt).toISOString();
    this.entries.set(ban.id, { ban, expiresAt, matcher });
    this.kinds[kind]++;
    return ban;
  }

  delete(id: string): boolean {
    const e = this.entries.get(id);
    if (e === undefined) return false;
    this.entries.delete(id);
    this.kinds[e.ban.kind]--;
    return true;
  }

  /** The bans in force, oldest first (expired ones are dropped). */
  list(now = Date.now()): Ban[] {
    this.prune(now);
    return [...this.entries.values()].map((e) => e.ban);
  }

  private prune(now: number): void {
    for (const [id, e] of this.entries) if (e.expiresAt <= now) this.delete(id);
  }

  /** The ban that refuses this client, or null. */
  match(clientId: string, username: string | undefined, ip: string, now = Date.now()): Ban | null {
    if (this.entries.size === 0) return null;
    for (const e of this.entries.values()) {
      if (e.expiresAt <= now) continue;
      const b = e.ban;
      if (b.kind === 'clientId' ? b.value === clientId : b.kind === 'username' ? username !== undefined && b.value === username : ip !== '' && e.matcher!.matches(ip)) return b;
    }
    return null;
  }

  /** Whether a ban of one kind matches (for kicking connected clients when a ban is added). */
  static matches(ban: Ban, matcher: CidrMatcher | null, clientId: string, username: string | undefined, ip: string): boolean {
    if (ban.kind === 'clientId') return ban.value === clientId;
    if (ban.kind === 'username') return username !== undefined && ban.value === username;
    return ip !== '' && matcher !== null && matcher.matches(ip);
  }

  get size(): number {
    return this.entries.size;
  }
}
