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
    const out: Message[] = [];
    const levels = filter.split('/');
    const n = levels.length;
    const nodes: RNode[] = [this.root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = depths.pop()!;
      if (i === n) {
        if (node.message) out.push(node.message);
        continue;
      }
      const level = levels[i]!;
      // Filters starting with a wildcard do not match topics starting with '$' [MQTT-4.7.2-1].
      const top = i === 0;
      if (level === '#') {
        // '#' also matches the parent level itself [MQTT-4.7.1-2].
        if (!top && node.message) out.push(node.message);
        this.below(node, out, top);
        continue;
      }
      if (!node.children) continue;
      if (level === '+') {
        // Pushed in reverse so that they are visited in insertion order.
        const children = [...node.children];
        for (let k = children.length - 1; k >= 0; k--) {
          const [key, child] = children[k]!;
          if (top && key.charCodeAt(0) === 36) continue;
          nodes.push(child);
          depths.push(i + 1);
        }
      } else {
        const child = node.children.get(level);
        if (child) {
          nodes.push(child);
          depths.push(i + 1);
        }
      }
    }
    return out;
  }

  *all(): IterableIterator<Message> {
    const stack: RNode[] = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.message) yield n.message;
      if (n.children) for (const c of n.children.values()) stack.push(c);
    }
  }

  /** Every message strictly below node, depth first, children in insertion order (an explicit stack). */
  private below(node: RNode, out: Message[], skipDollar: boolean): void {
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
      if (child.message) out.push(child.message);
      if (child.children) stack.push(child.children.entries());
    }
  }
}
