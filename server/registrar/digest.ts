/**
 * HTTP Digest for SIP (RFC 3261 §22.4, RFC 2617 qop=auth, RFC 7616 / RFC 8760 SHA-256).
 * Nonces are checked without a table (a timestamp, an id and an HMAC under a per-process
 * secret, bound to the client's address); only their nonce-counts are kept, in a fixed table.
 */
import crypto from 'node:crypto';
import { isWs, scanQuoted, skipWs, trimmedSlice, unquote } from '../sip/grammar.js';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

export interface Credentials {
  scheme: string;
  params: Map<string, string>;
}

/** `Digest username="a", realm="b", ...` -> scheme and parameters (values unquoted). */
export function parseCredentials(value: string): Credentials | null {
  let i = skipWs(value, 0);
  // credentials = auth-scheme LWS auth-params; LWS is SP or HTAB (RFC 3261 §25.1)
  let sp = i;
  while (sp < value.length && !isWs(value.charCodeAt(sp))) sp++;
  if (sp >= value.length) return null;
  const scheme = value.slice(i, sp);
  const params = new Map<string, string>();
  i = sp + 1;
  while (i < value.length) {
    i = skipWs(value, i);
    const eq = value.indexOf('=', i);
    if (eq < 0) return null;
    const name = trimmedSlice(value, i, eq).toLowerCase();
    i = skipWs(value, eq + 1);
    let v: string;
    try {
      if (value.charCodeAt(i) === 34) {
        const end = scanQuoted(value, i);
        // without a quoted-pair inside (the usual case) the value is the text between the quotes
        const bs = value.indexOf('\\', i + 1);
        v = bs < 0 || bs >= end - 1 ? value.slice(i + 1, end - 1) : unquote(value.slice(i, end));
        i = end;
      } else {
        let end = value.indexOf(',', i);
        if (end < 0) end = value.length;
        v = trimmedSlice(value, i, end);
        i = end;
      }
    } catch {
      return null;
    }
    params.set(name, v);
    i = skipWs(value, i);
    if (value.charCodeAt(i) === 44) i++;
  }
  return { scheme, params };
}

/** crypto.hash() (Node >= 20.12) is one native call; createHash() is three and an object. */
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : null;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

function hash(alg: DigestAlgorithm, s: string): string {
  const name = alg === 'MD5' ? 'md5' : 'sha256';
  // crypto.hash() encodes a string as UTF-8; our strings are latin1 (one char per byte):
  // the same bytes only when every char is ASCII
  if (oneShot !== null && isAscii(s)) return oneShot(name, s, 'hex');
  return crypto.createHash(name).update(s, 'latin1').digest('hex');
}

/** H(method:uri) by algorithm, method and uri: a REGISTER's is the same for every user. */
const ha2Cache = new Map<string, string>();
const HA2_CACHE_MAX = 1000;
const HA2_URI_MAX = 256;

/** Entries in the H(A2) cache (bounded: at most 1000 uris of at most 256 characters). */
export function ha2CacheSize(): number {
  return ha2Cache.size;
}

function ha2(alg: DigestAlgorithm, method: string, uri: string): string {
  const text = `${method}:${uri}`;
  const key = alg + ' ' + text;
  let h = ha2Cache.get(key);
  if (h === undefined) {
    h = hash(alg, text);
    // the uri is the client's: the cache keeps at most HA2_CACHE_MAX short ones
    if (uri.length <= HA2_URI_MAX) {
      if (ha2Cache.size >= HA2_CACHE_MAX) ha2Cache.clear();
      ha2Cache.set(key, h);
    }
  }
  return h;
}

/** H(username:realm:password), the secret both sides derive the response from. */
export function ha1(alg: DigestAlgorithm, username: string, realm: string, password: string): string {
  return hash(alg, `${username}:${realm}:${password}`);
}

/** The expected `response` for these credentials (RFC 2617 §3.2.2.1). */
export function expectedResponse(alg: DigestAlgorithm, secret: string, method: string, c: Map<string, string>): string {
  const h2 = ha2(alg, method, c.get('uri') ?? '');
  const nonce = c.get('nonce') ?? '';
  const qop = c.get('qop');
  if (qop) return hash(alg, `${secret}:${nonce}:${c.get('nc') ?? ''}:${c.get('cnonce') ?? ''}:${qop}:${h2}`);
  return hash(alg, `${secret}:${nonce}:${h2}`);
}

/**
 * Compares two strings in time that depends on their length only (which is public: the
 * digest's), as crypto.timingSafeEqual does, without making two Buffers for it.
 */
export function timingSafeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export type NonceCheck = 'valid' | 'stale' | 'invalid';
export type NonceUse = 'ok' | 'replayed' | 'evicted';

/**
 * A nonce is 32 characters: its issue time (ms, base 36, 9 characters), its id (base 36, 7)
 * and 16 characters (96 bits) of HMAC-SHA-256 over both and what the nonce is bound to.
 */
const TIME_CHARS = 9;
const HEAD_CHARS = TIME_CHARS + 7;
const MAC_CHARS = 16;
const NONCE_SHAPE = /^[0-9a-z]{16}[A-Za-z0-9_-]{16}$/;

/**
 * Digest nonces (RFC 7616 §3.3, §5.4): each challenge gets its own nonce, made of its issue
 * time, a nonce id, and an HMAC (per-process secret) over both and what the nonce is bound to
 * (the client's address): a nonce is checked without a table, is refused from another
 * address, and expires after the TTL (then stale, so the client retries without asking its
 * user: RFC 2617 §3.2.1).
 *
 * Replays are refused by the nonce-count: the highest `nc` used with each nonce is kept in a
 * fixed table indexed by nonce id (Kamailio's nid pool): the table never grows. A nonce whose
 * slot was taken by a newer one is "evicted" and treated as stale, never as fresh, so a replay
 * cannot slip through a reused slot.
 */
export class NonceFactory {
  private readonly hmac = new Hmac();
  private nextId = crypto.randomBytes(4).readUInt32BE(0);
  private readonly mask: number;
  /** per slot: the id of the nonce that owns it, and the highest nc used with it (0: none yet) */
  private readonly ids: Uint32Array;
  private readonly counts: Uint32Array;

  /** @param slots nonces tracked at once (a power of two; memory: 8 bytes each) */
  constructor(private readonly ttlMs: number, slots = 65536) {
    if (slots < 1 || (slots & (slots - 1)) !== 0) throw new RangeError('nonce slots must be a power of two');
    this.mask = slots - 1;
    this.ids = new Uint32Array(slots);
    this.counts = new Uint32Array(slots);
  }

  /** A new nonce bound to `bind` (the client's address); takes the slot of its id. */
  make(bind: string, now = Date.now()): string {
    const id = this.nextId;
    this.nextId = (id + 1) >>> 0;
    const head = Math.max(0, Math.floor(now)).toString(36).padStart(TIME_CHARS, '0') + id.toString(36).padStart(HEAD_CHARS - TIME_CHARS, '0');
    this.ids[id & this.mask] = id;
    this.counts[id & this.mask] = 0;
    return head + this.hmac.sign(head + bind).slice(0, MAC_CHARS);
  }

  /** Ours and for this `bind` ('invalid' otherwise); 'stale' once older than the TTL. */
  check(nonce: string, bind: string, now = Date.now()): NonceCheck {
    if (nonce.length !== HEAD_CHARS + MAC_CHARS || !NONCE_SHAPE.test(nonce)) return 'invalid';
    const head = nonce.slice(0, HEAD_CHARS);
    if (!timingSafeEqualHex(this.hmac.sign(head + bind).slice(0, MAC_CHARS), nonce.slice(HEAD_CHARS))) return 'invalid';
    const issued = parseInt(nonce.slice(0, TIME_CHARS), 36);
    if (issued > now + 1000) return 'invalid';
    return now - issued > this.ttlMs ? 'stale' : 'valid';
  }

  /**
   * Records the use of a nonce check() found valid with nonce-count `nc` (RFC 7616 §3.4:
   * each request increments it): 'replayed' unless `nc` is above every count used before.
   * Call only once the response proved the credentials, so a guess cannot burn a count.
   */
  use(nonce: string, nc: number): NonceUse {
    const id = parseInt(nonce.slice(TIME_CHARS, HEAD_CHARS), 36);
    const slot = id & this.mask;
    if (!NONCE_SHAPE.test(nonce) || this.ids[slot] !== id) return 'evicted';
    if (nc <= this.counts[slot]!) return 'replayed';
    this.counts[slot] = nc;
    return 'ok';
  }

  /** Fixed-size state, for tests and metrics. */
  toJSON(): { slots: number; ttlMs: number } {
    return { slots: this.ids.length, ttlMs: this.ttlMs };
  }
}

/**
 * HMAC-SHA-256 (RFC 2104) of ASCII text in two one-shot hashes (crypto.createHmac makes an
 * object and costs three times as much). The key is 64 random 7-bit bytes: key XOR ipad/opad
 * stays ASCII, so the padded keys can be strings that hash as exactly those bytes.
 */
export class Hmac {
  private readonly ipad: string;
  /** opad-key block followed by room for the inner digest */
  private readonly outer = Buffer.alloc(64 + 32);

  /** @param key 64 bytes below 0x80 (default: random) */
  constructor(private readonly key = crypto.randomBytes(64).map((b) => b & 0x7f)) {
    if (key.length !== 64 || key.some((b) => b > 0x7f)) throw new RangeError('the HMAC key must be 64 bytes below 0x80');
    this.ipad = Buffer.from(key.map((b) => b ^ 0x36)).toString('latin1');
    for (let i = 0; i < 64; i++) this.outer[i] = key[i]! ^ 0x5c;
  }

  /** base64url of HMAC-SHA-256(key, text), text taken as latin1 (one byte per character). */
  sign(text: string): string {
    if (oneShot === null || !isAscii(text)) return crypto.createHmac('sha256', this.key).update(text, 'latin1').digest('base64url');
    // the inner digest as latin1 text, written back as its bytes ('buffer' output is slower)
    this.outer.write(oneShot('sha256', this.ipad + text, 'binary'), 64, 'latin1');
    return oneShot('sha256', this.outer, 'base64url');
  }
}

/**
 * The nonce-count of credentials (RFC 7616 §3.4: 8 hex digits), or null when malformed.
 * Credentials without qop (RFC 2069) carry none: their nonce is good for one use (count 1).
 */
export function nonceCount(params: Map<string, string>): number | null {
  if (!params.has('qop')) return 1;
  const nc = params.get('nc') ?? '';
  if (!/^[0-9a-fA-F]{8}$/.test(nc)) return null;
  const n = parseInt(nc, 16);
  return n === 0 ? null : n;
}

export function challengeHeader(realm: string, nonce: string, alg: DigestAlgorithm, stale: boolean): string {
  return `Digest realm="${realm}", nonce="${nonce}", qop="auth", algorithm=${alg}${stale ? ', stale=true' : ''}`;
}
