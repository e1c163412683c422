// The config file's JSON Schema (schema/petrel.schema.json, draft 2020-12): a valid schema, made from the options
// table so that it covers every key, with the broker's own ranges; the examples validate against it, mistakes
// do not; the committed copy is the one `petrel --print-schema` prints.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { parse as parseToml } from 'smol-toml';
import { LISTENER_KEYS, LOGIN_GUARD_KEYS, settings, TOP_KEYS } from '../../src/cli/config.js';
import { configSchema, configSchemaText } from '../../src/cli/schema.js';
import { DEFAULT_LIMITS, INT_LIMITS, resolveLimits } from '../../src/broker/options.js';
import { CLI } from './cli-process.js';
import { MAX_WORKERS } from '../../src/cli/workers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
type Schema = { properties?: Record<string, Schema>; items?: Schema; [k: string]: unknown };

// ajv is CommonJS: its class is the default export's default.
const Ajv2020 = ((Ajv2020Module as unknown as { default?: unknown }).default ?? Ajv2020Module) as unknown as new (o: object) => {
  compile(s: object): ((d: unknown) => boolean) & { errors?: unknown[] | null };
};
// Strict: an unknown keyword or format is an error (the schema's `required` in if/then names properties declared
// beside it, which strictRequired cannot see, and a schema without `type` is fine).
let compiled: ReturnType<InstanceType<typeof Ajv2020>['compile']> | undefined;
function check(doc: unknown): string[] {
  compiled ??= new Ajv2020({ strict: true, strictRequired: false, strictTypes: false, allErrors: true }).compile(configSchema());
  return compiled(doc) ? [] : (compiled.errors ?? []).map((e) => JSON.stringify(e));
}

/** The schema of a dotted key (limits.maxQoS). */
function at(schema: Schema, key: string): Schema | undefined {
  let s: Schema | undefined = schema;
  for (const part of key.split('.')) s = s?.properties?.[part];
  return s;
}

describe('the config file schema', () => {
  const schema = configSchema() as Schema;

  it('is a valid draft 2020-12 schema (ajv compiles it in strict mode)', () => {
    assert.deepEqual(check({}), []);
  });

  it('schema/petrel.schema.json is what petrel --print-schema prints (after a change of options: npm run schema)', () => {
    const committed = readFileSync(join(ROOT, 'schema/petrel.schema.json'), 'utf8');
    assert.equal(committed, configSchemaText(), 'schema/petrel.schema.json is out of date: npm run build && npm run schema');
    const r = spawnSync(process.execPath, [CLI, '--print-schema'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, committed);
    assert.equal(JSON.parse(committed).$schema, 'https://json-schema.org/draft/2020-12/schema');
  });

  it('is published with the package', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[]; scripts: Record<string, string> };
    assert.ok(pkg.files.includes('schema'), 'package.json files has schema');
    assert.ok(pkg.files.includes('examples'), 'package.json files has examples');
    assert.match(pkg.scripts.schema!, /--print-schema > schema\/petrel\.schema\.json/);
  });

  it('covers every key of the options table, each with a description and the right type', () => {
    for (const st of settings()) {
      const s = at(schema, st.key);
      assert.ok(s, `${st.key} is in the schema`);
      assert.ok(typeof s.description === 'string' && s.description.length > 20, `${st.key} has a description`);
      const type = s.type ?? (s.enum ? 'enum' : undefined);
      const kinds: Record<string, string> = { int: 'integer', port: 'integer', number: 'number', bool: 'boolean', string: 'string', path: 'string', wspath: 'string', level: 'enum', logformat: 'enum', durability: 'enum' };
      const want = kinds[st.kind];
      assert.ok(want !== undefined, `${st.key}: kind '${st.kind}' is new: give it a case in schema.ts valueSchema() and here`);
      assert.equal(type, want, st.key);
      if (st.value !== undefined) assert.deepEqual(s.default, st.value, `${st.key} default`);
      if (st.deprecated) assert.equal(s.deprecated, true, `${st.key} deprecated`);
    }
    // And nothing else: each property of the schema is a key the loader knows.
    assert.deepEqual(Object.keys(schema.properties!).filter((k) => k !== '$schema').sort(), [...TOP_KEYS].sort());
    for (const section of ['limits', 'auth', 'cluster']) {
      const inTable = settings().filter((st) => st.key.startsWith(section + '.')).map((st) => st.key.slice(section.length + 1));
      const extra = section === 'auth' ? ['loginGuard'] : [];
      assert.deepEqual(Object.keys(at(schema, section)!.properties!).sort(), [...inTable, ...extra].sort(), section);
      assert.equal(at(schema, section)!.additionalProperties, false);
    }
    assert.deepEqual(Object.keys(DEFAULT_LIMITS).sort(), Object.keys(at(schema, 'limits')!.properties!).sort(), 'every limit');
    assert.deepEqual(Object.keys(schema.properties!.listeners!.items!.properties!).sort(), [...LISTENER_KEYS].sort(), 'every listener key');
    assert.deepEqual([at(schema, 'workers')!.minimum, at(schema, 'workers')!.maximum], [1, MAX_WORKERS], 'workers: the range workers.ts checks');
    const guard = (at(schema, 'auth.loginGuard')!.oneOf as Schema[])[1]!;
    assert.deepEqual(Object.keys(guard.properties!).sort(), [...LOGIN_GUARD_KEYS].sort(), 'every loginGuard key');
  });

  it("the limits' ranges are the broker's: the bounds are accepted, one past them is refused by both", () => {
    for (const [k, [min, max]] of Object.entries(INT_LIMITS)) {
      const s = at(schema, `limits.${k}`)!;
      assert.equal(s.minimum, min, k);
      assert.equal(s.maximum, max, k);
      for (const v of [min, max]) {
        assert.doesNotThrow(() => resolveLimits({ [k]: v }), `${k} = ${v}`);
        assert.deepEqual(check({ limits: { [k]: v } }), [], `${k} = ${v}`);
      }
      for (const v of [min - 1, max + 1]) {
        if (!Number.isSafeInteger(v)) continue;
        assert.throws(() => resolveLimits({ [k]: v }), `${k} = ${v} refused by the broker`);
        assert.notDeepEqual(check({ limits: { [k]: v } }), [], `${k} = ${v} refused by the schema`);
      }
    }
  });

  it('the examples (examples/petrel.yaml, .toml, .json) validate, and point editors at the schema', () => {
    const yamlText = readFileSync(join(ROOT, 'examples/petrel.yaml'), 'utf8');
    const tomlText = readFileSync(join(ROOT, 'examples/petrel.toml'), 'utf8');
    const jsonText = readFileSync(join(ROOT, 'examples/petrel.json'), 'utf8');
    for (const [name, doc] of [['yaml', parseYaml(yamlText)], ['toml', parseToml(tomlText)], ['json', JSON.parse(jsonText)]] as const) {
      assert.deepEqual(check(doc), [], `examples/petrel.${name}`);
      assert.ok(Object.keys(doc as object).length >= 8, `examples/petrel.${name} sets something`);
    }
    assert.match(yamlText.split('\n')[0]!, /^# yaml-language-server: \$schema=\.\.\/schema\/petrel\.schema\.json$/);
    assert.match(tomlText.split('\n')[0]!, /^#:schema \.\.\/schema\/petrel\.schema\.json$/);
    assert.equal(JSON.parse(jsonText).$schema, '../schema/petrel.schema.json');
  });

  const wrong: [string, unknown][] = [
    ['an unknown top-level key', { prot: 1883 }],
    ['an unknown limit', { limits: { maxPaketSize: 1 } }],
    ['a limit out of range', { limits: { maxQoS: 3 } }],
    ['a limit at the top level', { maxQoS: 1 }],
    ['a string for a port', { port: 'eighteen' }],
    ['an unknown log level', { logLevel: 'loud' }],
    ['a WebSocket path without /', { wsPath: 'mqtt' }],
    ['a tls listener without cert and key', { listeners: [{ transport: 'tls', port: 8883 }] }],
    ['a WebSocket setting on a tcp listener', { listeners: [{ transport: 'tcp', path: '/mqtt' }] }],
    ['a TLS setting on a listener without transport', { listeners: [{ port: 1, cert: 'c' }] }],
    ['an unknown listener key', { listeners: [{ prot: 1 }] }],
    ['an unknown loginGuard key', { auth: { loginGuard: { tries: 3 } } }],
    ['an unknown cluster key', { cluster: { redis: 'redis://h:1', nodeID: 'x' } }],
    ['a cluster lease below the minimum', { cluster: { redis: 'redis://h:1', leaseMs: 10 } }],
  ];
  for (const [what, doc] of wrong) {
    it(`refuses ${what}`, () => assert.notDeepEqual(check(doc), []));
  }

  it('accepts a tls listener with cert and key, and loginGuard: false', () => {
    assert.deepEqual(check({ listeners: [{ transport: 'tls', cert: 'c.pem', key: 'k.pem', requireCertificate: true, ca: 'ca.pem' }], auth: { loginGuard: false } }), []);
    assert.deepEqual(check({}), []);
  });
});
