/**
 * Character classes and small scanners of the RFC 3261 §25.1 ABNF, shared by the header
 * parsers. Strings here are "binary" strings: one char per byte (latin1), so what we forward
 * is byte-exact even where a message carries invalid UTF-8.
 */
import { SipParseError } from './errors.js';

const TOKEN = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~') {
  TOKEN[c.charCodeAt(0)] = 1;
}
/** `word` (Call-ID) = token chars plus ( ) < > : \ " / [ ] ? { } */
const WORD = TOKEN.slice();
for (const c of '()<>:\\"/[]?{}') WORD[c.charCodeAt(0)] = 1;

export function isTokenChar(code: number): boolean {
  return code < 128 && TOKEN[code] === 1;
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

export function isWord(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || WORD[c] !== 1) return false;
  }
  return true;
}

/**
 * The characters String.prototype.trim() removes and RegExp `\s` matches (ECMAScript
 * WhiteSpace and LineTerminator). The index-based scanners use it where the slicing code they
 * replaced called trim(), so that both accept and reject exactly the same input.
 */
export function isJsSpace(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 ||
    c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/** `s.slice(from, to).trim()`, without the intermediate string. */
export function trimmedSlice(s: string, from: number, to: number): string {
  while (from < to && isJsSpace(s.charCodeAt(from))) from++;
  while (to > from && isJsSpace(s.charCodeAt(to - 1))) to--;
  return s.slice(from, to);
}

/** isToken(s.slice(from, to)) */
export function isTokenRange(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TOKEN[c] !== 1) return false;
  }
  return true;
}

/** isWord(s.slice(from, to)) */
export function isWordRange(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || WORD[c] !== 1) return false;
  }
  return true;
}

export function isWs(code: number): boolean {
  return code === 32 || code === 9;
}

/** Skips SP / HTAB (headers are unfolded before they reach the scanners). */
export function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

export function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * Reads a quoted-string starting at the DQUOTE at `i`; returns the index after the closing
 * quote. quoted-pair may escape any octet but CR and LF (RFC 3261 §25.1).
 */
export function scanQuoted(s: string, i: number): number {
  i++;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c === 92) {
      const n = s.charCodeAt(i + 1);
      if (i + 1 >= s.length || n === 13 || n === 10) break;
      i += 2;
      continue;
    }
    if (c === 13 || c === 10) break;
    i++;
  }
  throw new SipParseError('unterminated quoted string');
}

export function unquote(q: string): string {
  // most quoted strings (tags, nonces, digests) hold no quoted-pair: one slice
  const bs = q.indexOf('\\', 1);
  if (bs < 0 || bs >= q.length - 1) return q.slice(1, -1);
  let out = '';
  for (let i = 1; i < q.length - 1; i++) {
    const c = q[i]!;
    if (c === '\\') { out += q[i + 1] ?? ''; i++; } else out += c;
  }
  return out;
}

export function quote(s: string): string {
  return '"' + s.replace(/(["\\])/g, '\\$1') + '"';
}

/** Parameters are ordered and their names case-insensitive (stored lower-case). */
export type Params = Map<string, string | null>;

/**
 * Parses `*( SEMI generic-param )` from `i` (pointing at ';' or the end, after optional
 * whitespace). Stops at `stop` chars outside quotes (e.g. ',' for lists). Returns the end.
 * gen-value = token / host / quoted-string (RFC 3261 §25.1); an empty name is an error
 * (the `;;` of RFC 4475 badinv01).
 */
export function parseParams(s: string, i: number, params: Params, stopAtComma: boolean): number {
  for (;;) {
    i = skipWs(s, i);
    if (i >= s.length) return i;
    const c = s.charCodeAt(i);
    if (stopAtComma && c === 44) return i;
    if (c !== 59) throw new SipParseError(`unexpected '${s[i]}' in parameters`);
    i = skipWs(s, i + 1);
    const nameStart = i;
    while (i < s.length && isTokenChar(s.charCodeAt(i))) i++;
    const name = s.slice(nameStart, i);
    if (name.length === 0) throw new SipParseError('empty parameter');
    i = skipWs(s, i);
    let value: string | null = null;
    if (s.charCodeAt(i) === 61) {
      i = skipWs(s, i + 1);
      if (s.charCodeAt(i) === 34) {
        const end = scanQuoted(s, i);
        value = s.slice(i, end);
        i = end;
      } else {
        const vStart = i;
        // host values may carry IPv6 brackets and colons
        while (i < s.length) {
          const v = s.charCodeAt(i);
          if (isTokenChar(v) || v === 58 || v === 91 || v === 93) i++;
          else break;
        }
        value = s.slice(vStart, i);
        if (value.length === 0) throw new SipParseError(`parameter ${name} has an empty value`);
      }
    }
    params.set(name.toLowerCase(), value);
  }
}

export function formatParams(params: Params): string {
  let out = '';
  for (const [k, v] of params) out += v === null ? `;${k}` : `;${k}=${v}`;
  return out;
}

/**
 * Splits a header value at top-level commas (outside quotes and angle brackets): the
 * multi-value form `Via: a, b` of RFC 3261 §7.3.1.
 */
export function splitList(s: string): string[] {
  if (s.indexOf(',') < 0) return [s];
  const out: string[] = [];
  let start = 0;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) { i = scanQuoted(s, i) - 1; continue; }
    if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && !angle) { out.push(s.slice(start, i).trim()); start = i + 1; }
  }
  out.push(s.slice(start).trim());
  return out;
}
