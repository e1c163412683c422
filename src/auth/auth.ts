// The broker's password file, ACL file, anonymous policy, hash queue and login guard (options.auth), and
// their reload. The decisions are taken in broker/handle-connect.ts, handle-subscribe.ts, handle-publish.ts and
// at delivery (broker.ts); the order is documented in broker/hooks.ts.

import { accessSync, constants, readFileSync } from 'node:fs';
import { optionError, PetrelError } from '../broker/errors.js';
import type { AuthOptions } from '../broker/options.js';
import { Acl, AclFileError, type AclIdentity } from './acl.js';
import { LoginGuard, LOGIN_GUARD_DEFAULTS, type LoginGuardOptions } from './login-guard.js';
import { parsePasswordFile, PasswordFileError, type PasswordDb, type PasswordEntry } from './password-file.js';
import { PasswordVerifier } from './verifier.js';

export interface ResolvedAuth {
  passwordFile: string | undefined;
  aclFile: string | undefined;
  allowAnonymous: boolean;
  maxConcurrentHashes: number;
  maxPendingHashes: number;
  loginGuard: LoginGuardOptions | false;
}

const AUTH_KEYS = new Set(['passwordFile', 'aclFile', 'allowAnonymous', 'maxConcurrentHashes', 'maxPendingHashes', 'loginGuard']);
const GUARD_KEYS: Record<string, [number, number]> = {
  maxFailures: [1, 1_000_000],
  windowSeconds: [1, 86_400 * 365],
  banSeconds: [1, 86_400 * 365],
  maxTracked: [1, 10_000_000],
};

function readableFile(key: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw optionError(key, 'must be a non-empty file path');
  try {
    accessSync(v, constants.R_OK);
  } catch (err) {
    throw optionError(key, `cannot read ${v}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return v;
}

function int(key: string, v: unknown, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw optionError(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Validate options.auth (errors name the key: `auth.passwordFile: cannot read /x: ENOENT`). */
export function resolveAuthOptions(a: AuthOptions | undefined): ResolvedAuth {
  if (a === undefined) a = {};
  if (a === null || typeof a !== 'object') throw optionError('auth', 'must be an object');
  for (const k of Object.keys(a)) {
    if (!AUTH_KEYS.has(k)) throw optionError(`auth.${k}`, `unknown option; known options are ${[...AUTH_KEYS].join(', ')}`);
  }
  const passwordFile = readableFile('auth.passwordFile', a.passwordFile);
  const aclFile = readableFile('auth.aclFile', a.aclFile);
  if (a.allowAnonymous !== undefined && typeof a.allowAnonymous !== 'boolean') throw optionError('auth.allowAnonymous', 'must be true or false');
  let loginGuard: LoginGuardOptions | false;
  const g = a.loginGuard as unknown;
  if (g === false) loginGuard = false;
  // On by default with a password file (whose failures it exists for); without one, on only when asked.
  else if (g === undefined) loginGuard = passwordFile === undefined ? false : { ...LOGIN_GUARD_DEFAULTS };
  else if (g === true) loginGuard = { ...LOGIN_GUARD_DEFAULTS };
  else if (g === null || typeof g !== 'object') throw optionError('auth.loginGuard', 'must be false or an object');
  else {
    loginGuard = { ...LOGIN_GUARD_DEFAULTS };
    for (const [k, v] of Object.entries(g)) {
      const range = GUARD_KEYS[k];
      if (range === undefined) throw optionError(`auth.loginGuard.${k}`, `unknown option; known options are ${Object.keys(GUARD_KEYS).join(', ')}`);
      (loginGuard as unknown as Record<string, number>)[k] = int(`auth.loginGuard.${k}`, v, LOGIN_GUARD_DEFAULTS[k as keyof LoginGuardOptions], range[0], range[1]);
    }
  }
  return {
    passwordFile,
    aclFile,
    allowAnonymous: a.allowAnonymous ?? passwordFile === undefined,
    maxConcurrentHashes: int('auth.maxConcurrentHashes', a.maxConcurrentHashes, 2, 1, 1024),
    maxPendingHashes: int('auth.maxPendingHashes', a.maxPendingHashes, 1000, 0, 10_000_000),
    loginGuard,
  };
}

/** Read and parse one of the auth files; a PetrelError naming the key, the file and (for a bad line) the line. */
function loadFile<T>(key: string, file: string, parse: (text: string, file: string) => T, LineError: new (...a: never[]) => Error): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw optionError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return parse(text, file);
  } catch (err) {
    if (err instanceof LineError) throw optionError(key, err.message);
    throw err;
  }
}

export function loadPasswordFile(file: string): Map<string, PasswordEntry> {
  return loadFile('auth.passwordFile', file, parsePasswordFile, PasswordFileError);
}

export function loadAclFile(file: string): Acl {
  return loadFile('auth.aclFile', file, (text, f) => Acl.parse(text, f), AclFileError);
}

/** A subscription restored from the store before its client connected again: nothing is readable for it yet. */
export const UNKNOWN_IDENTITY: AclIdentity = Object.freeze({ clientId: '', username: undefined });

export class BrokerAuth {
  passwords: PasswordDb | null;
  acl: Acl | null;
  readonly verifier: PasswordVerifier | null;
  readonly guard: LoginGuard | null;
  /** Clients authenticated by the password file, with the entry (as written) they were checked against. */
  readonly byPassword = new WeakMap<object, string>();
  /** The identity each session last connected with (for re-checking its subscriptions on reload). */
  readonly sessionIdentity = new WeakMap<object, AclIdentity>();
  /** Subscriptions whose grant came from the ACL file (not from a hook): reload re-checks these. */
  readonly aclGranted = new WeakSet<object>();

  constructor(readonly options: ResolvedAuth) {
    this.passwords = options.passwordFile === undefined ? null : loadPasswordFile(options.passwordFile);
    this.acl = options.aclFile === undefined ? null : loadAclFile(options.aclFile);
    this.verifier = this.passwords === null ? null : new PasswordVerifier(options.maxConcurrentHashes, options.maxPendingHashes, this.passwords);
    this.guard = options.loginGuard === false ? null : new LoginGuard(options.loginGuard);
  }

  get configured(): boolean {
    return this.passwords !== null || this.acl !== null;
  }

  /** Re-read both files; either failing leaves both as they were (the error names file and line). */
  reread(): { oldPasswords: PasswordDb | null; aclChanged: boolean } {
    const passwords = this.options.passwordFile === undefined ? null : loadPasswordFile(this.options.passwordFile);
    const acl = this.options.aclFile === undefined ? null : loadAclFile(this.options.aclFile);
    const oldPasswords = this.passwords;
    this.passwords = passwords;
    if (passwords !== null) this.verifier?.setDb(passwords);
    const aclChanged = acl !== null;
    this.acl = acl;
    return { oldPasswords, aclChanged };
  }
}

export { PetrelError };
