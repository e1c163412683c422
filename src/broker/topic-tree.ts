// The subscription tree: one node per topic level, with '+' and '#' children
// kept apart from the named ones. Matching a topic walks the tree once; the
// result (grouped by recipient) is cached per topic name, bounded in bytes and
// entries (oldest out first), and the whole cache is dropped on any subscribe or
// unsubscribe. Every walk over levels is a loop, never a recursion: a topic may
// have 65,536 levels.

import type { QoS } from '../protocol/packets.js';
import type { Message } from './message.js';
import type { AclIdentity } from '../auth/acl.js';

/** Anything that can receive messages: a session, or an in-process subscription. */
export interface Recipient {
  /** Client id (sessions) or '$local/N' (in-process subscriptions). */
  readonly id: string;
  /** Connected and able to take messages now. */
  readonly online: boolean;
  /** Keeps messages while offline (persistent session). */
  readonly persistent: boolean;
  /** For shared subscriptions: can take one more message without queueing. */
  hasRoom(): boolean;
  deliver(msg: Message, qos: QoS, retain: boolean, subIds: readonly number[] | undefined, group: SharedGroup | null): void;
}

export class Subscription {
  /** Filter as subscribed (with any $share/{group}/ prefix). */
  readonly filter: string;
  /** The topic filter part (without $share/{group}/). */
  readonly topicFilter: string;
  readonly group: string | null;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId: number | undefined;
  /** [subscriptionId], allocated once, sent as is. */
  subIds: readonly number[] | undefined;
  /**
   * Set when the ACL file grants this subscription only in part: each delivery is checked with canRead for
   * this identity (src/auth/acl.ts). null (always, without an ACL file): no check.
   */
  aclIdentity: AclIdentity | null = null;

  constructor(
    readonly recipient: Recipient,
    filter: string,
    topicFilter: string,
    group: string | null,
    qos: QoS,
    noLocal: boolean,
    retainAsPublished: boolean,
    retainHandling: 0 | 1 | 2,
    subscriptionId: number | undefined,
  ) {
    this.filter = filter;
    this.topicFilter = topicFilter;
    this.group = group;
    this.qos = qos;
    this.noLocal = noLocal;
    this.retainAsPublished = retainAsPublished;
    this.retainHandling = retainHandling;
    this.subscriptionId = subscriptionId;
    this.subIds = subscriptionId === undefined ? undefined : [subscriptionId];
  }
}

/**
 * A shared subscription group `$share/{name}/{filter}`: each message goes to one member (§4.8.2).
 * Members that are online and have room are served round-robin; if none has room, an online member
 * queues it; if none is online, a persistent member queues it; else the message is dropped.
 */
export class SharedGroup {
  readonly members: Subscription[] = [];
  private next = 0;
  constructor(
    readonly name: string,
    readonly topicFilter: string,
  ) {}

  pick(exclude: Recipient | null = null): Subscription | null {
    const m = this.members;
    const n = m.length;
    if (n === 0) return null;
    let fallbackOnline: Subscription | null = null;
    let fallbackPersistent: Subscription | null = null;
    for (let i = 0; i < n; i++) {
      const idx = (this.next + i) % n;
      const s = m[idx]!;
      const r = s.recipient;
      if (r === exclude) continue;
      if (r.online) {
        if (r.hasRoom()) {
          this.next = (idx + 1) % n;
          return s;
        }
        fallbackOnline ??= s;
      } else if (r.persistent) {
        fallbackPersistent ??= s;
      }
    }
    const s = fallbackOnline ?? fallbackPersistent;
    if (s) this.next = (m.indexOf(s) + 1) % n;
    return s;
  }
}

class Node {
  children: Map<string, Node> | null = null;
  plus: Node | null = null;
  hash: Node | null = null;
  subs: Map<string, Subscription> | null = null;
  shared: Map<string, SharedGroup> | null = null;
  constructor(
    readonly parent: Node | null,
    readonly key: string,
  ) {}

  isEmpty(): boolean {
    return (
      (this.children === null || this.children.size === 0) &&
      this.plus === null &&
      this.hash === null &&
      (this.subs === null || this.subs.size === 0) &&
      (this.shared === null || this.shared.size === 0)
    );
  }
}

/** Matches of one topic: per recipient, its matching non-shared subscriptions; and the shared groups. */
export interface MatchResult {
  /** Recipients with exactly one matching subscription (the common case). */
  readonly single: Subscription[];
  /** Recipients with several matching (overlapping) subscriptions. */
  readonly multi: Subscription[][];
  readonly shared: SharedGroup[];
}

const EMPTY: MatchResult = Object.freeze({ single: [], multi: [], shared: [] }) as MatchResult;

export class TopicTree {
  private readonly root = new Node(null, '');
  private readonly cache = new Map<string, MatchResult>();
  private readonly cacheLimit: number;
  private readonly cacheByteLimit: number;
  private cacheBytesUsed = 0;
  /** Number of subscriptions (shared members included). */
  size = 0;

  /**
   * @param cacheBytes bound of the match cache in bytes (see {@link cacheEntryBytes}); 0 disables the cache.
   * @param cacheLimit bound of the match cache in entries.
   */
  constructor(cacheBytes = 16 * 1024 * 1024, cacheLimit = 100_000) {
    this.cacheByteLimit = cacheBytes;
    this.cacheLimit = cacheLimit;
  }

  /** Estimated bytes held by the match cache (topic strings plus a fixed overhead per entry). */
  get cacheBytes(): number {
    return this.cacheBytesUsed;
  }

  /** Entries in the match cache. */
  get cacheSize(): number {
    return this.cache.size;
  }

  private clearCache(): void {
    this.cache.clear();
    this.cacheBytesUsed = 0;
  }

  /** Add or replace the recipient's subscription to the same filter. Returns the one it replaced. */
  add(sub: Subscription): Subscription | undefined {
    const node = this.nodeFor(sub.topicFilter, true) as Node;
    let previous: Subscription | undefined;
    if (sub.group === null) {
      node.subs ??= new Map();
      previous = node.subs.get(sub.recipient.id);
      node.subs.set(sub.recipient.id, sub);
    } else {
      node.shared ??= new Map();
      let g = node.shared.get(sub.group);
      if (!g) {
        g = new SharedGroup(sub.group, sub.topicFilter);
        node.shared.set(sub.group, g);
      }
      const i = g.members.findIndex((m) => m.recipient === sub.recipient);
      if (i >= 0) {
        previous = g.members[i];
        g.members[i] = sub;
      } else {
        g.members.push(sub);
      }
    }
    if (!previous) this.size++;
    this.clearCache();
    return previous;
  }

  /** Remove the recipient's subscription with this filter; returns it, or undefined if there was none. */
  remove(recipient: Recipient, topicFilter: string, group: string | null): Subscription | undefined {
    const node = this.nodeFor(topicFilter, false);
    if (!node) return undefined;
    let removed: Subscription | undefined;
    if (group === null) {
      removed = node.subs?.get(recipient.id);
      if (removed && removed.recipient === recipient) node.subs!.delete(recipient.id);
      else removed = undefined;
    } else {
      const g = node.shared?.get(group);
      if (g) {
        const i = g.members.findIndex((m) => m.recipient === recipient);
        if (i >= 0) {
          removed = g.members[i];
          g.members.splice(i, 1);
          if (g.members.length === 0) node.shared!.delete(group);
        }
      }
    }
    if (removed) {
      this.size--;
      this.clearCache();
      this.prune(node);
    }
    return removed;
  }

  /** Shared group of a filter, if it exists. */
  sharedGroup(topicFilter: string, group: string): SharedGroup | undefined {
    return this.nodeFor(topicFilter, false)?.shared?.get(group);
  }

  match(topic: string): MatchResult {
    const cached = this.cache.get(topic);
    if (cached !== undefined) return cached;
    const result = this.compute(topic);
    const bytes = cacheEntryBytes(topic, result);
    if (bytes > this.cacheByteLimit) return result;
    // Oldest entries go first (a Map iterates in insertion order) until the new one fits both bounds.
    while (this.cache.size > 0 && (this.cache.size >= this.cacheLimit || this.cacheBytesUsed + bytes > this.cacheByteLimit)) {
      const [oldest, m] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      this.cacheBytesUsed -= cacheEntryBytes(oldest, m);
    }
    this.cache.set(topic, result);
    this.cacheBytesUsed += bytes;
    return result;
  }

  private compute(topic: string): MatchResult {
    const levels = topic.split('/');
    const found: Subscription[] = [];
    const shared: SharedGroup[] = [];
    // Topics beginning with '$' are not matched by filters beginning with a wildcard [MQTT-4.7.2-1].
    this.walk(levels, found, shared, topic.charCodeAt(0) === 36 /* $ */);
    if (found.length === 0 && shared.length === 0) return EMPTY;
    const single: Subscription[] = [];
    const multi: Subscription[][] = [];
    if (found.length === 1) {
      single.push(found[0]!);
    } else {
      const byRecipient = new Map<Recipient, Subscription[]>();
      for (const s of found) {
        const list = byRecipient.get(s.recipient);
        if (list) list.push(s);
        else byRecipient.set(s.recipient, [s]);
      }
      for (const list of byRecipient.values()) {
        if (list.length === 1) single.push(list[0]!);
        else multi.push(list);
      }
    }
    return { single, multi, shared };
  }

  /**
   * Depth-first over the tree with an explicit stack (a topic may have up to 65,536 levels: recursion per
   * level would overflow the call stack). Visits in the order a recursive walk would: at each node '#'
   * first, then the named child's subtree, then the '+' child's.
   */
  private walk(levels: string[], found: Subscription[], shared: SharedGroup[], dollar: boolean): void {
    const nodes: Node[] = [this.root];
    const depths: number[] = [0];
    const n = levels.length;
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = depths.pop()!;
      const wildOk = !(dollar && i === 0);
      // '#' matches the parent level too ('a/#' matches 'a') [MQTT-4.7.1-2].
      if (node.hash !== null && wildOk) collect(node.hash, found, shared);
      if (i === n) {
        collect(node, found, shared);
        continue;
      }
      if (node.plus !== null && wildOk) {
        nodes.push(node.plus);
        depths.push(i + 1);
      }
      const child = node.children?.get(levels[i]!);
      if (child !== undefined) {
        nodes.push(child);
        depths.push(i + 1);
      }
    }
  }

  private nodeFor(topicFilter: string, create: boolean): Node | undefined {
    let node = this.root;
    const levels = topicFilter.split('/');
    for (const level of levels) {
      let next: Node | null | undefined;
      if (level === '+') {
        next = node.plus;
        if (next === null && create) next = node.plus = new Node(node, '+');
      } else if (level === '#') {
        next = node.hash;
        if (next === null && create) next = node.hash = new Node(node, '#');
      } else {
        next = node.children?.get(level);
        if (next === undefined && create) {
          next = new Node(node, level);
          (node.children ??= new Map()).set(level, next);
        }
      }
      if (!next) return undefined;
      node = next;
    }
    return node;
  }

  private prune(node: Node): void {
    let n: Node | null = node;
    while (n !== null && n.parent !== null && n.isEmpty()) {
      const p: Node = n.parent;
      if (n.key === '+') p.plus = null;
      else if (n.key === '#') p.hash = null;
      else p.children?.delete(n.key);
      n = p;
    }
  }
}

/** Per cached topic: a Map entry, the result object and its three arrays (an estimate, on the high side). */
const CACHE_ENTRY_OVERHEAD = 160;

/**
 * Bytes one cache entry is counted for: 2 per UTF-16 code unit of the topic (the worst case of a V8 string),
 * 8 per reference the result holds (one per matching recipient or group), plus the overhead.
 */
export function cacheEntryBytes(topic: string, m: MatchResult): number {
  let refs = m.single.length + m.shared.length;
  for (const list of m.multi) refs += 1 + list.length;
  return 2 * topic.length + 8 * refs + CACHE_ENTRY_OVERHEAD;
}

function collect(node: Node, found: Subscription[], shared: SharedGroup[]): void {
  if (node.subs !== null) for (const s of node.subs.values()) found.push(s);
  if (node.shared !== null) for (const g of node.shared.values()) shared.push(g);
}
