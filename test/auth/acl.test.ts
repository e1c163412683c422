// The ACL file: Mosquitto's grammar and evaluation, and Petrel's SUBSCRIBE classification (none / all /
// partial), property-tested with fast-check against a brute-force checker over a topic universe that holds a
// representative of every class of topics the rules can tell apart.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Acl, AclFileError, type AclIdentity } from '../../src/auth/acl.js';

const id = (clientId: string, username?: string): AclIdentity => ({ clientId, username });

/** An independent matcher (regular expressions), not the one under test. */
function bruteMatch(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && /^[+#]/.test(filter)) return false;
  const f = filter.split('/');
  let re = '^';
  for (let i = 0; i < f.length; i++) {
    const l = f[i]!;
    if (l === '#') {
      // '#' matches the parent level too: 'a/#' matches 'a'.
      re = i === 0 ? '^.*' : re + '(?:/.*)?';
      break;
    }
    re += (i === 0 ? '' : '/') + (l === '+' ? '[^/]*' : l.replace(/[$.*+?()[\]{}|^\\]/g, '\\$&'));
  }
  return new RegExp(re + '$').test(topic);
}

describe('ACL file grammar (Mosquitto aclfile__parse)', () => {
  it('parses user, topic and pattern lines with every access word; the anonymous section comes first', () => {
    const acl = Acl.parse(
      [
        '# comment',
        'topic read public/#',
        '',
        'user alice',
        'topic readwrite alice/#',
        'topic write inbox/alice',
        'topic deny alice/secret',
        'topic readwrite shared/with space',
        'topic both/ways',
        'pattern read devices/%c/#',
      ].join('\n'),
    );
    assert.equal(acl.canRead(id('x'), 'public/a'), true, 'anonymous section applies to a client without user name');
    assert.equal(acl.canRead(id('x', 'bob'), 'public/a'), false, 'anonymous section does not apply to a named user');
    assert.equal(acl.canRead(id('x', 'alice'), 'alice/a/b'), true);
    assert.equal(acl.canWrite(id('x', 'alice'), 'alice/a/b'), true);
    assert.equal(acl.canRead(id('x', 'alice'), 'inbox/alice'), false, 'write only');
    assert.equal(acl.canWrite(id('x', 'alice'), 'inbox/alice'), true);
    assert.equal(acl.canRead(id('x', 'alice'), 'alice/secret'), false, 'deny comes first');
    assert.equal(acl.canWrite(id('x', 'alice'), 'shared/with space'), true, 'a topic with a space (after an access word)');
    assert.equal(acl.canRead(id('x', 'alice'), 'both/ways') && acl.canWrite(id('x', 'alice'), 'both/ways'), true, 'readwrite by default');
    assert.equal(acl.canRead(id('dev1', 'bob'), 'devices/dev1/t'), true, 'pattern %c');
    assert.equal(acl.canRead(id('dev1', 'bob'), 'devices/dev2/t'), false);
    assert.equal(acl.canWrite(id('dev1', 'bob'), 'devices/dev1/t'), false, 'pattern read only');
  });

  it('an empty file denies everything (no match means deny)', () => {
    const acl = Acl.parse('');
    assert.equal(acl.canRead(id('a'), 'a'), false);
    assert.equal(acl.canWrite(id('a', 'u'), 'a'), false);
    assert.equal(acl.classify(id('a'), '#'), 'none');
  });

  it('refuses bad lines with the line number, as Mosquitto refuses the file', () => {
    const cases: [string, RegExp][] = [
      ['topic', /:2: empty topic/],
      ['topic maybe a/b', /:2: invalid access type/],
      ['topic read a/#/b', /:2: invalid topic/],
      ['topic read a/b+', /:2: invalid topic/],
      ['user', /:2: missing user name/],
      ['  # indented comment', /:2: invalid line/],
      ['grant read a', /:2: invalid line/],
    ];
    for (const [line, re] of cases) {
      assert.throws(() => Acl.parse(`topic read ok\n${line}\n`, 'acl.conf'), (e: unknown) => e instanceof AclFileError && e.line === 2 && re.test(e.message), line);
    }
  });

  it('`topic read` alone is the topic "read" with readwrite access, as in Mosquitto', () => {
    const acl = Acl.parse('topic read');
    assert.equal(acl.canWrite(id('c'), 'read'), true);
  });

  it('$ topics are matched only by rules that start with $: # does not grant $SYS', () => {
    const acl = Acl.parse('topic read #\ntopic read +/x\ntopic read $SYS/broker/#');
    assert.equal(acl.canRead(id('c'), '$SYS/other'), false);
    assert.equal(acl.canRead(id('c'), '$foo/x'), false);
    assert.equal(acl.canRead(id('c'), '$SYS/broker/load'), true);
    assert.equal(acl.classify(id('c'), '$SYS/#'), 'partial');
    assert.equal(acl.classify(id('c'), '$SYS/broker/#'), 'all');
    assert.equal(acl.classify(id('c'), '#'), 'all', '# itself matches no $ topic [MQTT-4.7.2-1]');
  });

  it('patterns never substitute a user name or client id containing +, # or /', () => {
    const acl = Acl.parse('pattern readwrite home/%u/#\npattern read dev/%c');
    for (const u of ['#', '+', 'a/+', 'a/b', 'x#', '']) {
      assert.equal(acl.canRead(id('c', u), `home/${u}/x`), false, `user ${JSON.stringify(u)}`);
      assert.equal(acl.canRead(id('c', u), 'home/other/x'), false, `user ${JSON.stringify(u)}`);
      assert.equal(acl.classify(id('c', u), 'home/#'), 'none', `user ${JSON.stringify(u)}`);
    }
    for (const c of ['#', '+', 'a/+', 'x/y']) {
      assert.equal(acl.canRead(id(c), `dev/${c}`), false, `client id ${JSON.stringify(c)}`);
      assert.equal(acl.classify(id(c), 'dev/+'), 'none');
    }
    assert.equal(acl.canRead(id('c', 'alice'), 'home/alice/x'), true);
    assert.equal(acl.canRead(id('c'), 'home//x'), false, 'a %u pattern is skipped without a user name');
  });

  it('a deny pattern that cannot be expanded makes the patterns deny (fail closed)', () => {
    const acl = Acl.parse('pattern deny home/%u/private\npattern read home/#');
    assert.equal(acl.canRead(id('c', 'bob'), 'home/bob/x'), true);
    assert.equal(acl.canRead(id('c', 'bob'), 'home/bob/private'), false);
    assert.equal(acl.canRead(id('c', '+'), 'home/x/private'), false);
    assert.equal(acl.canRead(id('c', '+'), 'home/x/public'), false, 'the unexpandable deny poisons the patterns');
  });

  it('classifies filters: none, all, partial (shared subscriptions by their inner filter at the caller)', () => {
    const acl = Acl.parse('user u\ntopic read a/#\ntopic deny a/secret\ntopic read b/+/c');
    const me = id('c', 'u');
    assert.equal(acl.classify(me, 'x/#'), 'none');
    assert.equal(acl.classify(me, 'a/b/#'), 'all');
    assert.equal(acl.classify(me, 'a/+'), 'partial', 'a/secret is denied');
    assert.equal(acl.classify(me, '#'), 'partial');
    assert.equal(acl.classify(me, 'a/secret'), 'none');
    assert.equal(acl.classify(me, 'a/secret/x'), 'all');
    assert.equal(acl.classify(me, 'b/+/c'), 'all');
    assert.equal(acl.classify(me, 'b/#'), 'partial');
    assert.equal(acl.classify(me, '+/+/c'), 'partial');
  });
});

// ---- property test against brute force ----

const WORDS = ['a', 'b', ''];
const levelArb = fc.constantFrom(...WORDS, '+');
function filterArb(allowDollar: boolean): fc.Arbitrary<string> {
  return fc
    .tuple(fc.array(levelArb, { minLength: 1, maxLength: 3 }), fc.boolean(), allowDollar ? fc.boolean() : fc.constant(false))
    .map(([levels, hash, dollar]) => {
      const l = [...levels];
      if (dollar) l[0] = '$s';
      if (hash) l.push('#');
      const f = l.join('/');
      return f === '' ? 'a' : f;
    })
    .chain((f) => fc.constantFrom(f, '#'));
}
const ruleArb = fc.tuple(fc.constantFrom('read', 'write', 'readwrite', 'deny'), filterArb(true), fc.constantFrom('topic', 'pattern'));

/** Every topic over {a, b, '', c (another word), $s, $t (another $ word)} with 1 to 5 levels. */
const UNIVERSE: string[] = (() => {
  const first = ['a', 'b', '', 'c', '$s', '$t'];
  const rest = ['a', 'b', '', 'c'];
  let level: string[][] = first.map((w) => [w]);
  const out: string[] = [];
  for (let d = 1; d <= 5; d++) {
    for (const t of level) out.push(t.join('/'));
    if (d < 5) level = level.flatMap((t) => rest.map((w) => [...t, w]));
  }
  return out;
})();

/** Mosquitto's evaluation written out plainly over rule lines, with the brute matcher. */
function bruteCan(rules: [string, string, string][], who: AclIdentity, topic: string, want: 'read' | 'write'): boolean {
  const own = rules.filter((r) => r[2] === 'topic');
  const pats = rules.filter((r) => r[2] === 'pattern');
  const has = (access: string): boolean => access === 'readwrite' || access === want;
  if (own.some(([a, f]) => a === 'deny' && bruteMatch(f, topic))) return false;
  if (own.some(([a, f]) => has(a) && bruteMatch(f, topic))) return true;
  if (pats.some(([a, f]) => a === 'deny' && bruteMatch(f, topic))) return false;
  void who;
  return pats.some(([a, f]) => has(a) && bruteMatch(f, topic));
}

describe('ACL classification against brute force (fast-check)', () => {
  it('canRead and canWrite agree with a plain evaluation over every topic of the universe', () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 6 }), (rules) => {
        const acl = Acl.parse(rules.map(([a, f, k]) => `${k} ${a} ${f}`).join('\n'));
        const who = id('c');
        for (const t of UNIVERSE) {
          assert.equal(acl.canRead(who, t), bruteCan(rules, who, t, 'read'), `read ${t}`);
          assert.equal(acl.canWrite(who, t), bruteCan(rules, who, t, 'write'), `write ${t}`);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('classify(filter) equals none/all/partial computed over every topic of the universe the filter matches', () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 6 }), filterArb(true), (rules, filter) => {
        const acl = Acl.parse(rules.map(([a, f, k]) => `${k} ${a} ${f}`).join('\n'));
        const who = id('c');
        let yes = 0;
        let no = 0;
        for (const t of UNIVERSE) {
          if (!bruteMatch(filter, t)) continue;
          if (bruteCan(rules, who, t, 'read')) yes++;
          else no++;
        }
        const want = yes === 0 ? 'none' : no === 0 ? 'all' : 'partial';
        assert.equal(acl.classify(who, filter), want, `filter ${filter} rules ${JSON.stringify(rules)}`);
      }),
      { numRuns: 1500 },
    );
  });
});
