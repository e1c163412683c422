// Mosquitto's ACL file (Mosquitto 2.0 src/security_default.c: aclfile__parse, add__acl, add__acl_pattern,
// mosquitto_acl_check_default), and what Petrel adds: SUBSCRIBE is checked too.
//
// Grammar, line by line (trailing blanks trimmed; tokens separated by spaces):
//   # comment                                   only when '#' is the first character of the line
//   user <name>                                 the `topic` lines that follow belong to <name>
//   topic [read|write|readwrite|deny] <topic>   <topic> is the rest of the line (it may contain spaces)
//   pattern [read|write|readwrite|deny] <topic> for every client, %c = client id, %u = user name
// Without an access word the access is readwrite; as in Mosquitto, `topic read` (one word) is the topic
// "read" with readwrite access. `topic` lines before any `user` line form the anonymous section: they apply to
// clients without a user name. Any other line is an error naming the line.
//
// Evaluation for one client and one topic and access (read or write), as Mosquitto's:
//   1. The client's own list (its user's `topic` lines, or the anonymous section): a matching deny rule
//      denies; else a matching rule with the access allows.
//   2. The patterns, expanded for the client: a matching deny pattern denies; else a matching pattern with
//      the access allows.
//   3. Else denied (no match means deny; an empty file denies everything).
// A rule matches a topic as a subscription filter would: wildcards never match a first level starting with
// '$' [MQTT-4.7.2-1], so only rules that start with '$' match `$` topics (`#` does not grant $SYS).
// Patterns: a `%u` pattern is skipped for a client without a user name. A user name or client id that contains
// '+', '#' or '/' (or is empty) is never substituted: an allowing pattern that would need it does not match,
// and a denying pattern that would need it makes every pattern deny that client (fail closed; Mosquitto
// denies all pattern access to '+'/'#' names, CVE-2017-7650, and allows '/').
//
// SUBSCRIBE (classify): a filter is 'none' when no topic it can match is readable (refused), 'all' when every
// topic it matches is readable (granted, no per-message check), else 'partial' (granted; each delivery is
// checked with canRead).

export interface AclIdentity {
  readonly clientId: string;
  readonly username: string | undefined;
}

export const READ = 1;
export const WRITE = 2;
const DENY = 0;

interface Rule {
  readonly access: number;
  readonly topic: string;
  readonly line: number;
}

interface PatternRule extends Rule {
  readonly usesC: boolean;
  readonly usesU: boolean;
}

/** The rules of one client, expanded, as token lists. */
interface Effective {
  readonly deny1: string[][];
  readonly read1: string[][];
  readonly write1: string[][];
  /** A deny pattern could not be expanded for this client: the patterns give nothing. */
  readonly poisoned: boolean;
  readonly deny2: string[][];
  readonly read2: string[][];
  readonly write2: string[][];
}

export class AclFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'AclFileError';
  }
}

export type SubscribeClass = 'none' | 'all' | 'partial';

/** Whether a value may be put into a pattern: no wildcard, no level separator, not empty. */
function substitutable(v: string | undefined): v is string {
  return v !== undefined && v !== '' && !/[+#/]/.test(v);
}

/** Mosquitto's mosquitto_sub_topic_check: '+' and '#' fill whole levels, '#' only last. A reason or null. */
function checkFilter(f: string): string | null {
  if (f.length === 0) return 'empty topic';
  if (f.includes('\0')) return 'topic contains a NUL byte';
  const levels = f.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return "'#' must be a whole level and the last one";
    if (l.includes('+') && l !== '+') return "'+' must be a whole level";
  }
  return null;
}

export class Acl {
  private readonly anonymous: Rule[] = [];
  private readonly users = new Map<string, Rule[]>();
  private readonly patterns: PatternRule[] = [];
  private readonly cache = new WeakMap<AclIdentity, Effective>();
  /** Rules read from the file (for logs). */
  ruleCount = 0;

  static parse(text: string, file = 'ACL file'): Acl {
    const acl = new Acl();
    const lines = text.split('\n');
    let user: string | null = null;
    for (let i = 0; i < lines.length; i++) {
      const n = i + 1;
      const buf = lines[i]!.replace(/[ \t\r\n\v\f]+$/, '');
      if (buf.startsWith('#')) continue;
      // strtok(" "): leading spaces are skipped; an empty line has no token.
      const m = /^ *([^ ]*)(?: (.*))?$/s.exec(buf)!;
      const keyword = m[1]!;
      const rest = m[2];
      if (keyword === '') continue;
      if (keyword === 'topic' || keyword === 'pattern') {
        const m2 = /^ *([^ ]+)(?: (.*))?$/s.exec(rest ?? '');
        if (m2 === null) throw new AclFileError(file, n, `empty topic in a ${keyword} line`);
        let accessWord: string | undefined = m2[1]!;
        let topic: string;
        const tail = m2[2] === undefined ? '' : m2[2].replace(/^[ \t\r\n\v\f]+/, '');
        if (m2[2] !== undefined && tail !== '') {
          topic = tail;
        } else {
          topic = accessWord;
          accessWord = undefined;
        }
        let access: number;
        switch (accessWord) {
          case undefined:
          case 'readwrite':
            access = READ | WRITE;
            break;
          case 'read':
            access = READ;
            break;
          case 'write':
            access = WRITE;
            break;
          case 'deny':
            access = DENY;
            break;
          default:
            throw new AclFileError(file, n, `invalid access type ${JSON.stringify(accessWord).slice(0, 40)} (read, write, readwrite or deny)`);
        }
        const bad = checkFilter(topic);
        if (bad !== null) throw new AclFileError(file, n, `invalid topic ${JSON.stringify(topic).slice(0, 200)}: ${bad}`);
        if (keyword === 'topic') {
          const rule: Rule = { access, topic, line: n };
          if (user === null) acl.anonymous.push(rule);
          else {
            let list = acl.users.get(user);
            if (list === undefined) acl.users.set(user, (list = []));
            list.push(rule);
          }
        } else {
          acl.patterns.push({ access, topic, line: n, usesC: topic.includes('%c'), usesU: topic.includes('%u') });
        }
        acl.ruleCount++;
      } else if (keyword === 'user') {
        const name = (rest ?? '').replace(/^[ \t\r\n\v\f]+/, '');
        if (name === '') throw new AclFileError(file, n, 'missing user name');
        user = name;
      } else {
        throw new AclFileError(file, n, `invalid line: unknown keyword ${JSON.stringify(keyword).slice(0, 40)} (topic, pattern or user)`);
      }
    }
    return acl;
  }

  private effective(id: AclIdentity): Effective {
    let e = this.cache.get(id);
    if (e !== undefined) return e;
    const own = id.username === undefined ? this.anonymous : (this.users.get(id.username) ?? []);
    const deny1: string[][] = [];
    const read1: string[][] = [];
    const write1: string[][] = [];
    for (const r of own) {
      const t = r.topic.split('/');
      if (r.access === DENY) deny1.push(t);
      if (r.access & READ) read1.push(t);
      if (r.access & WRITE) write1.push(t);
    }
    const deny2: string[][] = [];
    const read2: string[][] = [];
    const write2: string[][] = [];
    let poisoned = false;
    for (const p of this.patterns) {
      if (p.usesU && id.username === undefined) continue; // as Mosquitto
      if ((p.usesU && !substitutable(id.username)) || (p.usesC && !substitutable(id.clientId))) {
        if (p.access === DENY) poisoned = true;
        continue;
      }
      const t = expand(p.topic, id).split('/');
      if (p.access === DENY) deny2.push(t);
      if (p.access & READ) read2.push(t);
      if (p.access & WRITE) write2.push(t);
    }
    e = { deny1, read1, write1, poisoned, deny2, read2, write2 };
    this.cache.set(id, e);
    return e;
  }

  canRead(id: AclIdentity, topic: string): boolean {
    return this.check(id, topic, READ);
  }

  canWrite(id: AclIdentity, topic: string): boolean {
    return this.check(id, topic, WRITE);
  }

  private check(id: AclIdentity, topic: string, access: number): boolean {
    const e = this.effective(id);
    const t = topic.split('/');
    if (anyMatch(e.deny1, t)) return false;
    if (anyMatch(access === READ ? e.read1 : e.write1, t)) return true;
    if (e.poisoned || anyMatch(e.deny2, t)) return false;
    return anyMatch(access === READ ? e.read2 : e.write2, t);
  }

  /** What a SUBSCRIBE filter (the inner filter of a shared one) may receive: see the head of this file. */
  classify(id: AclIdentity, filter: string): SubscribeClass {
    const e = this.effective(id);
    return classifyFilter(filter.split('/'), e);
  }
}

function expand(topic: string, id: AclIdentity): string {
  let out = '';
  for (let i = 0; i < topic.length; i++) {
    const c = topic[i]!;
    if (c === '%' && i < topic.length - 1) {
      const k = topic[i + 1];
      if (k === 'c') {
        out += id.clientId;
        i++;
        continue;
      }
      if (k === 'u' && id.username !== undefined) {
        out += id.username;
        i++;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** MQTT filter matching over token lists (see protocol/topic.ts topicMatches). */
export function tokensMatch(f: readonly string[], t: readonly string[]): boolean {
  if (t[0]!.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const x = f[i]!;
    if (x === '#') return true;
    if (i >= t.length) return false;
    if (x !== '+' && x !== t[i]) return false;
  }
  return f.length === t.length;
}

function anyMatch(list: readonly string[][], t: readonly string[]): boolean {
  for (let i = 0; i < list.length; i++) if (tokensMatch(list[i]!, t)) return true;
  return false;
}

// ---- filter against rules ----
//
// The topics a filter can match are grouped into classes that every involved filter (the subscription's and
// the rules') treats alike: at each level a topic either has one of the literal words some filter names at
// that level, or some other word (and at the first level, some other word starting with '$', which wildcards
// do not match). A depth-first walk over these classes, carrying each filter's state (how many levels it
// matched so far, or "matched by '#'", or "failed"), visits every class the subscription filter matches and
// evaluates readability there, stopping as soon as both a readable and an unreadable class were seen. States
// already visited are not walked again. A walk that grows past WALK_BUDGET states answers 'partial', which is
// always safe: the subscription is granted and every delivery is checked with canRead.

const DEAD = -1;
const HASH = -2;
const OTHER = '\u0000other';
const OTHER_DOLLAR = '\u0000$other';
export const WALK_BUDGET = 50_000;

function classifyFilter(sub: string[], e: Effective): SubscribeClass {
  // Involved filters: 0 = the subscription, then the rule lists in a fixed order.
  const lists = [e.deny1, e.read1, e.deny2, e.read2];
  const filters: string[][] = [sub];
  const kind: number[] = [-1];
  for (let k = 0; k < lists.length; k++) {
    if (e.poisoned && k >= 2) continue;
    for (const f of lists[k]!) {
      filters.push(f);
      kind.push(k);
    }
  }
  const n = filters.length;
  let readable = false;
  let unreadable = false;
  let budget = WALK_BUDGET;
  const seen = new Set<string>();

  const evalEnd = (state: Int32Array, depth: number): void => {
    const m = (i: number): boolean => {
      const s = state[i]!;
      if (s === HASH) return true;
      if (s === DEAD) return false;
      const f = filters[i]!;
      return f.length === depth || (f.length === depth + 1 && f[depth] === '#');
    };
    if (!m(0)) return;
    let d1 = false, r1 = false, d2 = false, r2 = false;
    for (let i = 1; i < n; i++) {
      if (!m(i)) continue;
      switch (kind[i]) {
        case 0: d1 = true; break;
        case 1: r1 = true; break;
        case 2: d2 = true; break;
        case 3: r2 = true; break;
      }
    }
    const ok = !d1 && (r1 || (!e.poisoned && !d2 && r2));
    if (ok) readable = true;
    else unreadable = true;
  };

  // Explicit stack: no recursion over levels.
  const stack: { state: Int32Array; depth: number }[] = [{ state: new Int32Array(n), depth: 0 }];
  while (stack.length > 0) {
    if (readable && unreadable) return 'partial';
    if (--budget < 0) return 'partial';
    const { state, depth } = stack.pop()!;
    if (depth > 0) evalEnd(state, depth);
    let alive = false;
    // A filter still matching level by level may match or fail deeper; once every filter is either matched by
    // '#' or failed, every longer topic of this class is evaluated like the one just ended.
    for (let i = 0; i < n; i++) if (state[i]! >= 0) alive = true;
    if (!alive) continue;
    // The words to try at this level.
    const words = new Set<string>();
    for (let i = 0; i < n; i++) {
      const s = state[i]!;
      if (s < 0) continue;
      const tok = filters[i]![s];
      if (tok !== undefined && tok !== '+' && tok !== '#') words.add(tok);
    }
    words.add(OTHER);
    if (depth === 0) words.add(OTHER_DOLLAR);
    for (const w of words) {
      const dollar = depth === 0 && (w === OTHER_DOLLAR || (w !== OTHER && w.startsWith('$')));
      const next = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const s = state[i]!;
        if (s < 0) {
          next[i] = s;
          continue;
        }
        const f = filters[i]!;
        if (s >= f.length) {
          next[i] = DEAD;
          continue;
        }
        const tok = f[s]!;
        if (tok === '#') next[i] = dollar ? DEAD : HASH;
        else if (tok === '+') next[i] = dollar ? DEAD : s + 1;
        else next[i] = tok === w ? s + 1 : DEAD;
      }
      if (next[0] === DEAD) continue;
      const key = `${depth + 1}:${next.join(',')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      stack.push({ state: next, depth: depth + 1 });
    }
  }
  if (readable && unreadable) return 'partial';
  return readable ? 'all' : 'none';
}
