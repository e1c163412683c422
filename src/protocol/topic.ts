// Topic names and topic filters (MQTT 5.0 section 4.7, shared subscriptions 4.8.2).
// Validators return null when the input is valid, otherwise a short reason.

const SHARE_PREFIX = '$share/';
const MAX_STRING_BYTES = 65535;

function tooLong(s: string): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes, so only long strings need measuring.
  return s.length * 3 > MAX_STRING_BYTES && Buffer.byteLength(s, 'utf8') > MAX_STRING_BYTES;
}

/**
 * Topic Name (PUBLISH, Will Topic, Response Topic): at least one character
 * [MQTT-4.7.3-1], no wildcard characters [MQTT-3.3.2-2], no U+0000 [MQTT-4.7.3-2],
 * at most 65535 bytes. UTF-8 well-formedness of received bytes is checked by the decoder.
 */
export function validateTopicName(t: string): string | null {
  if (t.length === 0) return 'topic name is empty [MQTT-4.7.3-1]';
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 0x2b || c === 0x23) return 'topic name contains a wildcard [MQTT-3.3.2-2]';
    if (c === 0) return 'topic name contains U+0000 [MQTT-4.7.3-2]';
  }
  if (tooLong(t)) return 'topic name longer than 65535 bytes';
  return null;
}

/** Wildcard placement rules on a plain (non-shared) filter. */
function checkFilterLevels(f: string, from: number): string | null {
  const n = f.length;
  if (from >= n) return 'topic filter is empty [MQTT-4.7.3-1]';
  for (let i = from; i < n; i++) {
    const c = f.charCodeAt(i);
    if (c === 0x23 /* # */) {
      // '#' must be the last character and alone in its level [MQTT-4.7.1-1].
      if (i !== n - 1) return "'#' is not the last character of the topic filter [MQTT-4.7.1-1]";
      if (i > from && f.charCodeAt(i - 1) !== 0x2f) return "'#' does not occupy a whole level [MQTT-4.7.1-1]";
    } else if (c === 0x2b /* + */) {
      // '+' must occupy an entire level [MQTT-4.7.1-2].
      if (i > from && f.charCodeAt(i - 1) !== 0x2f) return "'+' does not occupy a whole level [MQTT-4.7.1-2]";
      if (i < n - 1 && f.charCodeAt(i + 1) !== 0x2f) return "'+' does not occupy a whole level [MQTT-4.7.1-2]";
    } else if (c === 0) {
      return 'topic filter contains U+0000 [MQTT-4.7.3-2]';
    }
  }
  return null;
}

/**
 * Topic Filter (SUBSCRIBE, UNSUBSCRIBE): non-empty, wildcards placed per
 * [MQTT-4.7.1-1] and [MQTT-4.7.1-2], and shared subscriptions of the form
 * `$share/{ShareName}/{filter}` where ShareName is at least one character and
 * contains no '/', '+' or '#' [MQTT-4.8.2-1], [MQTT-4.8.2-2].
 * The `$share/` syntax is checked for every protocol version.
 */
export function validateTopicFilter(f: string): string | null {
  if (f.length === 0) return 'topic filter is empty [MQTT-4.7.3-1]';
  if (tooLong(f)) return 'topic filter longer than 65535 bytes';
  if (f.startsWith(SHARE_PREFIX) || f === '$share') {
    const slash = f.indexOf('/', SHARE_PREFIX.length);
    if (slash < 0) return 'shared subscription has no topic filter after the share name [MQTT-4.8.2-2]';
    if (slash === SHARE_PREFIX.length) return 'shared subscription has an empty share name [MQTT-4.8.2-1]';
    for (let i = SHARE_PREFIX.length; i < slash; i++) {
      const c = f.charCodeAt(i);
      if (c === 0x2b || c === 0x23) return "share name contains '+' or '#' [MQTT-4.8.2-2]";
      if (c === 0) return 'share name contains U+0000 [MQTT-4.7.3-2]';
    }
    if (slash === f.length - 1) return 'shared subscription has an empty topic filter [MQTT-4.8.2-2]';
    return checkFilterLevels(f, slash + 1);
  }
  return checkFilterLevels(f, 0);
}

/** `$share/{group}/{filter}` → its parts; null for a filter that is not a (valid) shared subscription. */
export function parseSharedFilter(f: string): { group: string; filter: string } | null {
  if (!f.startsWith(SHARE_PREFIX)) return null;
  const slash = f.indexOf('/', SHARE_PREFIX.length);
  if (slash <= SHARE_PREFIX.length || slash === f.length - 1) return null;
  const group = f.slice(SHARE_PREFIX.length, slash);
  if (group.includes('+') || group.includes('#')) return null;
  return { group, filter: f.slice(slash + 1) };
}

/**
 * Whether a topic name or filter has more than `max` levels (levels are separated by '/'; a shared filter
 * `$share/{group}/{filter}` is counted by its filter). Only strings of at least `max` characters can, so the
 * common short topic costs one comparison.
 */
export function exceedsTopicLevels(t: string, max: number): boolean {
  if (t.length < max) return false;
  let from = 0;
  if (t.startsWith(SHARE_PREFIX)) {
    const slash = t.indexOf('/', SHARE_PREFIX.length);
    if (slash > 0) from = slash + 1;
  }
  let levels = 1;
  for (let i = t.indexOf('/', from); i !== -1; i = t.indexOf('/', i + 1)) {
    if (++levels > max) return true;
  }
  return false;
}

/**
 * Reference matcher, written to be obviously correct rather than fast (the
 * broker's subscription tree is tested against it). Both arguments are assumed
 * valid. A shared filter is matched by its inner filter.
 *
 * - Levels are separated by '/'; empty levels are levels like any other.
 * - '+' matches exactly one level, which may be empty.
 * - '#' matches the rest of the topic: zero or more levels, so 'a/#' matches 'a'.
 * - A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1].
 */
export function topicMatches(filter: string, topic: string): boolean {
  const shared = parseSharedFilter(filter);
  if (shared !== null) filter = shared.filter;
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** '$SYS' or a topic under it: the broker's own namespace (§4.7.2). */
export function isSysTopic(topic: string): boolean {
  return topic.startsWith('$SYS') && (topic.length === 4 || topic.charCodeAt(4) === 47);
}
