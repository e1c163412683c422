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

  /** Retained messages whose topic matches the (non-shared) filter. */
  match(filter: string): Message[] {
    const out: Message[] = [];
    this.walk(this.root, filter.split('/'), 0, out);
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

  private walk(node: RNode, levels: string[], i: number, out: Message[]): void {
    if (i === levels.length) {
      if (node.message) out.push(node.message);
      return;
    }
    const level = levels[i]!;
    // Filters starting with a wildcard do not match topics starting with '$' [MQTT-4.7.2-1].
    const top = i === 0;
    if (level === '#') {
      // '#' also matches the parent level itself [MQTT-4.7.1-2].
      if (!top && node.message) out.push(node.message);
      this.all0(node, out, top);
      return;
    }
    if (!node.children) return;
    if (level === '+') {
      for (const [k, child] of node.children) {
        if (top && k.charCodeAt(0) === 36) continue;
        this.walk(child, levels, i + 1, out);
      }
    } else {
      const child = node.children.get(level);
      if (child) this.walk(child, levels, i + 1, out);
    }
  }

  /** Every message strictly below node. */
  private all0(node: RNode, out: Message[], skipDollar: boolean): void {
    if (!node.children) return;
    for (const [k, child] of node.children) {
      if (skipDollar && k.charCodeAt(0) === 36) continue;
      if (child.message) out.push(child.message);
      this.all0(child, out, false);
    }
  }
}
