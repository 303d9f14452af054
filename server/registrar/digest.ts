/**
 * HTTP Digest for SIP (RFC 3261 §22.4, RFC 2617 qop=auth, RFC 8760 SHA-256). Nonces are
 * stateless: a timestamp and its HMAC under a per-process secret, so a challenge costs no
 * memory and a forged or expired nonce is known without a table.
 */
import crypto from 'node:crypto';
import { isWs, scanQuoted, skipWs, unquote } from '../sip/grammar.js';

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
    const name = value.slice(i, eq).trim().toLowerCase();
    i = skipWs(value, eq + 1);
    let v: string;
    try {
      if (value.charCodeAt(i) === 34) {
        const end = scanQuoted(value, i);
        v = unquote(value.slice(i, end));
        i = end;
      } else {
        let end = value.indexOf(',', i);
        if (end < 0) end = value.length;
        v = value.slice(i, end).trim();
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

function hash(alg: DigestAlgorithm, s: string): string {
  return crypto.createHash(alg === 'MD5' ? 'md5' : 'sha256').update(s, 'latin1').digest('hex');
}

/** H(username:realm:password), the secret both sides derive the response from. */
export function ha1(alg: DigestAlgorithm, username: string, realm: string, password: string): string {
  return hash(alg, `${username}:${realm}:${password}`);
}

/** The expected `response` for these credentials (RFC 2617 §3.2.2.1). */
export function expectedResponse(alg: DigestAlgorithm, secret: string, method: string, c: Map<string, string>): string {
  const ha2 = hash(alg, `${method}:${c.get('uri') ?? ''}`);
  const nonce = c.get('nonce') ?? '';
  const qop = c.get('qop');
  if (qop) return hash(alg, `${secret}:${nonce}:${c.get('nc') ?? ''}:${c.get('cnonce') ?? ''}:${qop}:${ha2}`);
  return hash(alg, `${secret}:${nonce}:${ha2}`);
}

export function timingSafeEqualHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return crypto.timingSafeEqual(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
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
