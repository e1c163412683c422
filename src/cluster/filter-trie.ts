// Topic filters to values, matched against topic names: the cluster's route table (filter → nodes with a
// subscriber) and the matcher of a dead node's sessions while its inbox is drained. Wildcards follow
// [MQTT-4.7.1-2/3]; a filter starting with a wildcard does not match topics starting with '$' [MQTT-4.7.2-1].

class TrieNode<V> {
  children: Map<string, TrieNode<V>> | null = null;
  values: Set<V> | null = null;
  hash: Set<V> | null = null;
}

export class FilterTrie<V> {
  private readonly root = new TrieNode<V>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(filter: string, value: V): boolean {
    const levels = filter.split('/');
    let n = this.root;
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      if (l === '#' && i === levels.length - 1) {
        n.hash ??= new Set();
        if (n.hash.has(value)) return false;
        n.hash.add(value);
        this.count++;
        return true;
      }
      n.children ??= new Map();
      let c = n.children.get(l);
      if (c === undefined) n.children.set(l, (c = new TrieNode()));
      n = c;
    }
    n.values ??= new Set();
    if (n.values.has(value)) return false;
    n.values.add(value);
    this.count++;
    return true;
  }

  delete(filter: string, value: V): boolean {
    const levels = filter.split('/');
    const path: [TrieNode<V>, string][] = [];
    let n = this.root;
    let set: Set<V> | null = null;
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      if (l === '#' && i === levels.length - 1) {
        set = n.hash;
        break;
      }
      const c = n.children?.get(l);
      if (c === undefined) return false;
      path.push([n, l]);
      n = c;
    }
    if (set === null && (levels[levels.length - 1] !== '#')) set = n.values;
    if (set === null || !set.delete(value)) return false;
    this.count--;
    // Prune empty nodes.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, key] = path[i]!;
      const c = parent.children!.get(key)!;
      if ((c.values?.size ?? 0) > 0 || (c.hash?.size ?? 0) > 0 || (c.children?.size ?? 0) > 0) break;
      parent.children!.delete(key);
    }
    return true;
  }

  /** Every value of every filter matching the topic, once. */
  match(topic: string, out: Set<V> = new Set()): Set<V> {
    const levels = topic.split('/');
    const dollar = topic.startsWith('$');
    const walk = (n: TrieNode<V>, i: number): void => {
      if (n.hash !== null && !(dollar && i === 0)) for (const v of n.hash) out.add(v);
      if (i === levels.length) {
        if (n.values !== null) for (const v of n.values) out.add(v);
        return;
      }
      const ch = n.children;
      if (ch === null) return;
      const exact = ch.get(levels[i]!);
      if (exact !== undefined) walk(exact, i + 1);
      if (!(dollar && i === 0)) {
        const plus = ch.get('+');
        if (plus !== undefined) walk(plus, i + 1);
      }
    };
    walk(this.root, 0);
    return out;
  }

  clear(): void {
    this.root.children = null;
    this.root.values = null;
    this.root.hash = null;
    this.count = 0;
  }
}
