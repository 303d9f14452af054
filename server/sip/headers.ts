/** Header names: compact forms (RFC 3261 §7.3.3 and later RFCs) and display spellings. */

const COMPACT: Record<string, string> = {
  i: 'call-id', m: 'contact', e: 'content-encoding', l: 'content-length', c: 'content-type',
  f: 'from', s: 'subject', k: 'supported', t: 'to', v: 'via', o: 'event', r: 'refer-to',
  b: 'referred-by', u: 'allow-events', x: 'session-expires', y: 'identity',
  a: 'accept-contact', j: 'reject-contact', d: 'request-disposition',
};

const DISPLAY: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate',
  'max-forwards': 'Max-Forwards', 'record-route': 'Record-Route', 'content-length': 'Content-Length',
  'content-type': 'Content-Type', 'user-agent': 'User-Agent', 'min-expires': 'Min-Expires',
  'proxy-authenticate': 'Proxy-Authenticate', 'proxy-authorization': 'Proxy-Authorization',
  'rseq': 'RSeq', 'rack': 'RAck', 'mime-version': 'MIME-Version', 'sip-etag': 'SIP-ETag',
  'sip-if-match': 'SIP-If-Match', 'session-expires': 'Session-Expires', 'min-se': 'Min-SE',
};

/** The lower-case full name a header is stored under. */
export function headerKey(name: string): string {
  const known = KNOWN.get(name);
  if (known !== undefined) return known.key;
  const lower = name.toLowerCase();
  return lower.length === 1 ? (COMPACT[lower] ?? lower) : lower;
}

/** How we write a header name we create (Via, Call-ID, CSeq, ...). */
const displayCache = new Map<string, string>();

export function displayName(key: string): string {
  let d = DISPLAY[key] ?? displayCache.get(key);
  if (d !== undefined) return d;
  d = key.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
  if (displayCache.size < 1000) displayCache.set(key, d);
  return d;
}

/** Headers that may appear once only; a second one makes a request invalid (RFC 4475 multi01). */
export const SINGLE_VALUED = new Set([
  'call-id', 'cseq', 'from', 'to', 'max-forwards', 'content-length', 'content-type', 'expires',
]);

/** Headers whose comma-separated values we split into one entry each (RFC 3261 §7.3.1). */
export const LIST_VALUED = new Set(['via', 'route', 'record-route', 'contact']);

export interface HeaderName {
  /** headerKey(name) */
  readonly key: string;
  readonly name: string;
}

/**
 * The spellings nearly every message uses, looked up as written: the parser then stores the
 * same (interned) key and name strings for every message, with no lower-casing, and the
 * `h.key === 'via'` comparisons of every header lookup are pointer comparisons.
 */
const KNOWN = new Map<string, HeaderName>();
for (const key of [
  'via', 'from', 'to', 'call-id', 'cseq', 'contact', 'max-forwards', 'expires', 'content-length',
  'content-type', 'user-agent', 'authorization', 'www-authenticate', 'proxy-authorization',
  'proxy-authenticate', 'route', 'record-route', 'allow', 'supported', 'require', 'server',
  'accept', 'date', 'timestamp', 'event', 'subject', 'reason', 'min-expires', 'session-expires',
  'allow-events', 'organization', 'p-asserted-identity', 'privacy', 'refer-to', 'referred-by',
]) {
  const display = displayName(key);
  KNOWN.set(display, { key, name: display });
  KNOWN.set(key, { key, name: key });
}
for (const [compact, key] of Object.entries(COMPACT)) KNOWN.set(compact, { key, name: compact });

/** The same spellings by first character, to recognise a name in place (no slice, no hash). */
const BY_FIRST: (HeaderName[] | undefined)[] = new Array(128);
for (const h of KNOWN.values()) (BY_FIRST[h.name.charCodeAt(0)] ??= []).push(h);

/**
 * The key and name of a header name read from the wire: the shared strings when it is spelled
 * one of the usual ways, else `name` itself and its key.
 */
export function headerName(name: string): HeaderName {
  return KNOWN.get(name) ?? { key: headerKey(name), name };
}

/** headerName(s.slice(start, end)), reading the usual spellings in place. */
export function headerNameAt(s: string, start: number, end: number): HeaderName {
  const c = s.charCodeAt(start);
  const candidates = c < 128 ? BY_FIRST[c] : undefined;
  if (candidates !== undefined) {
    const length = end - start;
    for (const h of candidates) if (h.name.length === length && s.startsWith(h.name, start)) return h;
  }
  return headerName(s.slice(start, end));
}
