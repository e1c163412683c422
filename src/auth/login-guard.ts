// Failed-login protection per client address (EMQX's flapping detection is the model, by address rather than
// client id): after maxFailures failed authentications from one address within windowSeconds, CONNECTs from
// it are refused for banSeconds: CONNACK 0x8A Banned (3.1/3.1.1: return code 5 Not authorized), before any
// password is hashed. Memory is bounded: at most maxTracked addresses are kept, the least recently touched
// evicted first.

export interface LoginGuardOptions {
  maxFailures: number;
  windowSeconds: number;
  banSeconds: number;
  maxTracked: number;
}

export const LOGIN_GUARD_DEFAULTS: Readonly<LoginGuardOptions> = Object.freeze({
  maxFailures: 5,
  windowSeconds: 60,
  banSeconds: 300,
  maxTracked: 100_000,
});

interface Entry {
  /** Times (ms) of the failures within the window, oldest first; at most maxFailures. */
  failures: number[];
  bannedUntil: number;
}

export class LoginGuard {
  private readonly map = new Map<string, Entry>();

  constructor(readonly options: LoginGuardOptions) {}

  get tracked(): number {
    return this.map.size;
  }

  /** Whether CONNECTs from this address are refused now. */
  banned(ip: string, now = Date.now()): boolean {
    const e = this.map.get(ip);
    if (e === undefined || e.bannedUntil === 0) return false;
    if (now < e.bannedUntil) return true;
    e.bannedUntil = 0;
    e.failures.length = 0;
    return false;
  }

  /** A failed authentication from this address. Returns true if the address became banned by it. */
  failed(ip: string, now = Date.now()): boolean {
    let e = this.map.get(ip);
    if (e === undefined) {
      e = { failures: [], bannedUntil: 0 };
      if (this.map.size >= this.options.maxTracked) {
        const oldest = this.map.keys().next();
        if (!oldest.done) this.map.delete(oldest.value);
      }
    } else {
      this.map.delete(ip); // re-inserted below: most recently touched last
    }
    this.map.set(ip, e);
    const from = now - this.options.windowSeconds * 1000;
    const f = e.failures;
    while (f.length > 0 && f[0]! <= from) f.shift();
    f.push(now);
    if (f.length > this.options.maxFailures) f.shift();
    if (f.length >= this.options.maxFailures && e.bannedUntil <= now) {
      e.bannedUntil = now + this.options.banSeconds * 1000;
      return true;
    }
    return false;
  }
}

/** The address part of 'host:port' or '[v6]:port' (ConnectionMeta.remoteIp is used when the transport set it). */
export function addressPart(remoteAddress: string): string {
  if (remoteAddress.startsWith('[')) {
    const end = remoteAddress.indexOf(']');
    return end > 0 ? remoteAddress.slice(1, end) : remoteAddress;
  }
  const colon = remoteAddress.lastIndexOf(':');
  return colon > 0 && remoteAddress.indexOf(':') === colon ? remoteAddress.slice(0, colon) : remoteAddress;
}
