// Topic names, topic filters, shared subscriptions, and the reference matcher (section 4.7, 4.8.2).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSharedFilter, topicMatches, validateTopicFilter, validateTopicName } from '../../src/protocol/topic.js';

describe('validateTopicName', () => {
  const valid = ['a', '/', 'a/b', '/finance', 'a//b', 'a/', '$SYS/broker', ' ', 'ü/😀', '$share/g/a', 'a'.repeat(65535)];
  const invalid = ['', 'a/+', '+', '#', 'a/#', 'a#', 'sport+', 'a\u0000b', 'a'.repeat(65536), 'é'.repeat(40000)];
  for (const t of valid) it(`valid: ${JSON.stringify(t).slice(0, 40)}`, () => assert.equal(validateTopicName(t), null));
  for (const t of invalid) it(`invalid: ${JSON.stringify(t).slice(0, 40)}`, () => assert.notEqual(validateTopicName(t), null));
});

describe('validateTopicFilter', () => {
  const valid = [
    '#', '+', 'a', 'a/#', 'a/+', '+/+', '/+', '+/', '/#', 'a/+/b', 'a/+/#', '+/#', '//', 'a//b', '/finance',
    '$SYS/#', '$SYS/+/x', '$share/g/a', '$share/g/#', '$share/group-1/+/x', '$share/g/$SYS/#', '$share/g//', '$shared/x', '$SHARE/g',
  ];
  const invalid: [string, string][] = [
    ['', 'MQTT-4.7.3-1'],
    ['a#', 'MQTT-4.7.1-1'],
    ['#/a', 'MQTT-4.7.1-1'],
    ['a/#/b', 'MQTT-4.7.1-1'],
    ['##', 'MQTT-4.7.1-1'],
    ['a+', 'MQTT-4.7.1-2'],
    ['+a', 'MQTT-4.7.1-2'],
    ['a/+b', 'MQTT-4.7.1-2'],
    ['a/b+/c', 'MQTT-4.7.1-2'],
    ['++', 'MQTT-4.7.1-2'],
    ['a\u0000', 'MQTT-4.7.3-2'],
    ['$share', 'MQTT-4.8.2-2'],
    ['$share/', 'MQTT-4.8.2-2'],
    ['$share//a', 'MQTT-4.8.2-1'],
    ['$share/g', 'MQTT-4.8.2-2'],
    ['$share/g/', 'MQTT-4.8.2-2'],
    ['$share/g+/a', 'MQTT-4.8.2-2'],
    ['$share/#/a', 'MQTT-4.8.2-2'],
    ['$share/g/a#', 'MQTT-4.7.1-1'],
    ['$share/g/+a', 'MQTT-4.7.1-2'],
  ];
  for (const f of valid) it(`valid: ${f}`, () => assert.equal(validateTopicFilter(f), null));
  for (const [f, ref] of invalid) {
    it(`invalid: ${JSON.stringify(f)} [${ref}]`, () => {
      const reason = validateTopicFilter(f);
      assert.notEqual(reason, null);
      assert.ok(reason!.endsWith(`[${ref}]`), reason!);
    });
  }
});

describe('parseSharedFilter', () => {
  it('splits group and filter', () => {
    assert.deepEqual(parseSharedFilter('$share/g/a/b'), { group: 'g', filter: 'a/b' });
    assert.deepEqual(parseSharedFilter('$share/consumers/#'), { group: 'consumers', filter: '#' });
    assert.deepEqual(parseSharedFilter('$share/g//'), { group: 'g', filter: '/' });
  });
  it('null for non-shared or invalid shared filters', () => {
    for (const f of ['a/b', '$share', '$share/g', '$share/g/', '$share//a', '$shared/g/a', '$share/g+/a', '#']) {
      assert.equal(parseSharedFilter(f), null, f);
    }
  });
});

// [filter, topic, matches]
const MATCHES: [string, string, boolean][] = [
  // 4.7.1.2 multi-level wildcard examples
  ['sport/tennis/player1/#', 'sport/tennis/player1', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
  ['sport/#', 'sport', true],
  ['a/#', 'a', true],
  ['a/#', 'a/', true],
  ['a/#', 'ab', false],
  ['a/#', 'b/a', false],
  ['#', 'a', true],
  ['#', 'a/b/c', true],
  ['#', '/', true],
  // 4.7.1.3 single-level wildcard examples
  ['sport/tennis/+', 'sport/tennis/player1', true],
  ['sport/tennis/+', 'sport/tennis/player2', true],
  ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
  ['sport/+', 'sport', false],
  ['sport/+', 'sport/', true],
  ['+/+', '/finance', true],
  ['/+', '/finance', true],
  ['+', '/finance', false],
  ['+', 'a', true],
  ['+', '', true],
  ['+/+', '/', true],
  ['+', '/', false],
  ['a/+/b', 'a//b', true],
  ['a/+/#', 'a/x', true],
  ['a/+/#', 'a', false],
  ['+/#', 'a', true],
  // 4.7.2 topics beginning with $ [MQTT-4.7.2-1]
  ['#', '$SYS/broker/clients', false],
  ['+/monitor/Clients', '$SYS/monitor/Clients', false],
  ['+', '$SYS', false],
  ['$SYS/#', '$SYS/monitor/Clients', true],
  ['$SYS/#', '$SYS', true],
  ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
  ['$SYS/+', '$SYS/', true],
  ['a/#', 'a/$b', true],
  ['+/$b', 'a/$b', true],
  // exact levels, case, empty levels
  ['a/b', 'a/b', true],
  ['a/b', 'a/B', false],
  ['a/b', 'a/b/', false],
  ['a/b/', 'a/b/', true],
  ['a//b', 'a//b', true],
  ['a//b', 'a/b', false],
  ['/finance', '/finance', true],
  ['/finance', 'finance', false],
  ['+/+/+', 'a/b', false],
  // shared subscriptions match by their inner filter
  ['$share/g/a/+', 'a/b', true],
  ['$share/g/#', '$SYS/x', false],
  ['$share/g/$SYS/#', '$SYS/x', true],
];

describe('topicMatches', () => {
  for (const [f, t, m] of MATCHES) {
    it(`${f} ${m ? 'matches' : 'does not match'} ${JSON.stringify(t)}`, () => {
      assert.equal(validateTopicFilter(f), null, 'filter is valid');
      assert.equal(validateTopicName(t === '' ? 'x' : t), null, 'topic is valid');
      assert.equal(topicMatches(f, t), m);
    });
  }

  it('agrees with an independent regular-expression matcher on random filters and topics', () => {
    function toRegExp(filter: string): RegExp {
      let src = '';
      const levels = filter.split('/');
      for (let i = 0; i < levels.length; i++) {
        const l = levels[i]!;
        if (l === '#') {
          src += i === 0 ? '.*' : '(/.*)?';
          break;
        }
        if (i > 0) src += '/';
        src += l === '+' ? '[^/]*' : l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      }
      return new RegExp(`^${src}$`);
    }
    function regexMatch(filter: string, topic: string): boolean {
      if (topic.startsWith('$') && /^[+#]/.test(filter)) return false;
      return toRegExp(filter).test(topic);
    }
    let s = 99;
    const rnd = (n: number): number => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const topicLevels = ['a', 'b', '', '$SYS', 'a$'];
    const filterLevels = ['a', 'b', '', '+', '$SYS'];
    let checked = 0;
    for (let n = 0; n < 20000; n++) {
      const t = Array.from({ length: 1 + rnd(4) }, () => topicLevels[rnd(topicLevels.length)]).join('/');
      const levels = Array.from({ length: 1 + rnd(4) }, () => filterLevels[rnd(filterLevels.length)]!);
      if (rnd(3) === 0) levels.push('#');
      const f = levels.join('/');
      if (t === '' || validateTopicFilter(f) !== null) continue;
      assert.equal(topicMatches(f, t), regexMatch(f, t), `${f} vs ${t}`);
      checked++;
    }
    assert.ok(checked > 10000);
  });
});
