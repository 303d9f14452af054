/**
 * HTTP Digest for SIP (RFC 3261 §22.4, RFC 2617 qop=auth, RFC 8760 SHA-256). Nonces are
 * stateless: a timestamp and its HMAC under a per-process secret, so a challenge costs no
 * memory and a forged or expired nonce is known without a table.
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

function ha2(alg: DigestAlgorithm, method: string, uri: string): string {
  const text = `${method}:${uri}`;
  const key = alg + ' ' + text;
  let h = ha2Cache.get(key);
  if (h === undefined) {
    h = hash(alg, text);
    if (ha2Cache.size >= 1000) ha2Cache.clear(); // the uri is the client's: keep it bounded
    ha2Cache.set(key, h);
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

/**
 * Nonces name the second they were issued in: everyone challenged in the same second gets
 * the same nonce (as Kamailio's auth module does), so a burst of REGISTERs costs one HMAC a
 * second, and a verified nonce is remembered instead of verified again.
 */
export class NonceFactory {
  private readonly secret = crypto.randomBytes(32);
  private current = { second: -1, nonce: '' };
  /** nonce -> issue time (ms), for nonces that verified; bounded */
  private readonly verified = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  make(now = Date.now()): string {
    const second = Math.floor(now / 1000);
    if (second === this.current.second) return this.current.nonce;
    const t = Buffer.alloc(8);
    t.writeBigUInt64BE(BigInt(second * 1000));
    const mac = crypto.createHmac('sha256', this.secret).update(t).digest().subarray(0, 16);
    const nonce = Buffer.concat([t, mac]).toString('base64url');
    this.current = { second, nonce };
    return nonce;
  }

  check(nonce: string, now = Date.now()): NonceCheck {
    let issued = this.verified.get(nonce);
    if (issued === undefined) {
      const raw = Buffer.from(nonce, 'base64url');
      // Node's decoder skips characters outside the alphabet and a partial trailing sextet:
      // only the exact text make() wrote is ours.
      if (raw.length !== 24 || raw.toString('base64url') !== nonce) return 'invalid';
      const t = raw.subarray(0, 8);
      const mac = crypto.createHmac('sha256', this.secret).update(t).digest().subarray(0, 16);
      if (!crypto.timingSafeEqual(mac, raw.subarray(8))) return 'invalid';
      issued = Number(t.readBigUInt64BE());
      if (this.verified.size >= 4096) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(nonce, issued);
    }
    if (issued > now + 1000) return 'invalid';
    return now - issued > this.ttlMs ? 'stale' : 'valid';
  }
}

export function challengeHeader(realm: string, nonce: string, alg: DigestAlgorithm, stale: boolean): string {
  return `Digest realm="${realm}", nonce="${nonce}", qop="auth", algorithm=${alg}${stale ? ', stale=true' : ''}`;
}
