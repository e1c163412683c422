// Compact text forms for what the SQLite store keeps in columns that are not
// plain scalars: MQTT 5.0 properties and subscription identifier lists.
//
// Properties: JSON of the object with every Buffer field as a base64 string.
// Keys and value types are those of `Properties`; user properties stay an
// ordered array of [name, value] pairs, so repeated names and their order
// survive. Keys whose value is undefined are left out (absent on decode).

import type { Properties } from '../protocol/packets.js';

/** The Properties fields whose value is a Buffer. */
type BufferKey = { [K in keyof Properties]-?: NonNullable<Properties[K]> extends Buffer ? K : never }[keyof Properties];

// Must list every BufferKey: the `satisfies` check fails to compile if a
// Buffer-typed property is added to Properties and not here.
const BUFFER_KEYS = ['correlationData', 'authenticationData'] as const satisfies readonly BufferKey[];
type Missing = Exclude<BufferKey, (typeof BUFFER_KEYS)[number]>;
const allBufferKeysListed: [Missing] extends [never] ? true : Missing = true;
void allBufferKeysListed;

/** Properties to text; null for undefined (no properties). */
export function encodeProperties(properties: Properties | undefined): string | null {
  if (properties === undefined || properties === null) return null;
  let copy: Record<string, unknown> | undefined;
  for (const key of BUFFER_KEYS) {
    const value = properties[key];
    if (value !== undefined) {
      copy ??= { ...properties };
      copy[key] = value.toString('base64');
    }
  }
  return JSON.stringify(copy ?? properties);
}

/** The inverse of encodeProperties. */
export function decodeProperties(text: string): Properties {
  const obj = JSON.parse(text) as Record<string, unknown>;
  for (const key of BUFFER_KEYS) {
    const value = obj[key];
    if (typeof value === 'string') obj[key] = Buffer.from(value, 'base64');
  }
  return obj as Properties;
}

/** Subscription identifiers to text ("1,7"); null for undefined. An empty list is "". */
export function encodeIds(ids: readonly number[] | undefined): string | null {
  if (ids === undefined) return null;
  return ids.join(',');
}

export function decodeIds(text: string): number[] {
  if (text === '') return [];
  const parts = text.split(',');
  const out = new Array<number>(parts.length);
  for (let i = 0; i < parts.length; i++) out[i] = Number(parts[i]);
  return out;
}
