// Retained messages, one per topic, in a tree of topic levels so that a new
// subscription's filter finds its retained messages without scanning them all.

import type { Message } from './message.js';

class RNode {
  children: Map<string, RNode> | null = null;
  message: Message | null = null;
  constructor(
    readonly parent: RNode | null,
    readonly key: string,
  ) {}
}

export class RetainedIndex {
  private readonly root = new RNode(null, '');
  size = 0;

  get(topic: string): Message | undefined {
    let node: RNode | undefined = this.root;
    for (const level of topic.split('/')) {
      node = node.children?.get(level);
      if (!node) return undefined;
    }
    return node.message ?? undefined;
  }

  /** Set (message) or clear (null) the retained message of a topic. */
  set(topic: string, message: Message | null): void {
    let node = this.root;
    const levels = topic.split('/');
    if (message === null) {
      for (const level of levels) {
        const next = node.children?.get(level);
        if (!next) return;
        node = next;
      }
      if (node.message !== null) this.size--;
      node.message = null;
      // prune empty branches
      let n: RNode | null = node;
      while (n && n.parent && n.message === null && (n.children === null || n.children.size === 0)) {
        n.parent.children!.delete(n.key);
        n = n.parent;
      }
      return;
    }
    for (const level of levels) {
      let next = node.children?.get(level);
      if (!next) {
        next = new RNode(node, level);
        (node.children ??= new Map()).set(level, next);
      }
      node = next;
    }
    if (node.message === null) this.size++;
    node.message = message;
  }

  /**
   * Retained messages whose topic matches the (non-shared) filter. A loop with an explicit stack, never a
   * recursion per level (topics and filters may have 65,536 levels); the order is that of a depth-first walk
   * with children in insertion order.
   */
  match(filter: string): Message[] {
    return [...this.iterate(filter)];
  }

  /**
   * The messages whose topic matches a (non-shared) filter, one at a time, depth first with children in
   * insertion order: a walk that keeps only a frame per
   * level of the filter (Map iterators), so a subscription owed many retained messages holds no list of them.
   * Changes made while it runs are seen or not as a Map iterator sees them; a cleared topic is not yielded.
   */
  *iterate(filter: string): Generator<Message, void, undefined> {
    const levels = filter.split('/');
    const n = levels.length;
    const frames: { it: Iterator<RNode>; i: number }[] = [{ it: [this.root][Symbol.iterator](), i: 0 }];
    while (frames.length > 0) {
      const f = frames[frames.length - 1]!;
      const r = f.it.next();
      if (r.done === true) {
        frames.pop();
        continue;
      }
      const node = r.value;
      const i = f.i;
      if (i === n) {
        if (node.message) yield node.message;
        continue;
      }
      const level = levels[i]!;
      const top = i === 0;
      if (level === '#') {
        // '#' also matches the parent level itself [MQTT-4.7.1-2]; not a '$' topic from the top [MQTT-4.7.2-1].
        if (!top && node.message) yield node.message;
        yield* this.belowIter(node, top);
        continue;
      }
      if (!node.children) continue;
      if (level === '+') frames.push({ it: childrenOf(node.children, top), i: i + 1 });
      else {
        const child = node.children.get(level);
        if (child) frames.push({ it: [child][Symbol.iterator](), i: i + 1 });
      }
    }
  }

  private *belowIter(node: RNode, skipDollar: boolean): Generator<Message, void, undefined> {
    if (!node.children) return;
    const stack: Iterator<[string, RNode]>[] = [node.children.entries()];
    while (stack.length > 0) {
      const r = stack[stack.length - 1]!.next();
      if (r.done === true) {
        stack.pop();
        continue;
      }
      const [key, child] = r.value;
      if (skipDollar && stack.length === 1 && key.charCodeAt(0) === 36) continue;
      if (child.message) yield child.message;
      if (child.children) stack.push(child.children.entries());
    }
  }

  *all(): IterableIterator<Message> {
    const stack: RNode[] = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.message) yield n.message;
      if (n.children) for (const c of n.children.values()) stack.push(c);
    }
  }
}

/** The children of a node, without '$' topics at the top level [MQTT-4.7.2-1]. */
function* childrenOf(children: Map<string, RNode>, skipDollar: boolean): Generator<RNode, void, undefined> {
  for (const [key, child] of children) {
    if (skipDollar && key.charCodeAt(0) === 36) continue;
    yield child;
  }
}
