/**
 * SIP requests and responses (RFC 3261 §7). Headers are kept as written (binary strings,
 * one char per byte) in their order, so a proxy forwards them byte for byte; the structured
 * headers a proxy reads (Via, From, To, CSeq, Call-ID) are parsed on first use and cached.
 */
import { parseNameAddr, tagOf, type NameAddr } from './address.js';
import { SipParseError } from './errors.js';
import { displayName } from './headers.js';
import { parseUri, type SipUri } from './uri.js';
import { parseVia, type Via } from './via.js';
import type { Source } from './transport/types.js';

export interface Header {
  /** lower-case full name (compact forms expanded) */
  readonly key: string;
  /** name as written on the wire */
  readonly name: string;
  readonly value: string;
}

export interface CSeq {
  seq: number;
  method: string;
}

const EMPTY = Buffer.alloc(0);

function isSpTab(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * CSeq = 1*DIGIT LWS Method (§20.16), as /^[ \t]*(\d{1,10})[ \t]+([^ \t]+)[ \t]*$/ reads
 * it, without the regular expression.
 */
function parseCSeq(v: string): CSeq {
  const n = v.length;
  let i = 0;
  while (i < n && isSpTab(v.charCodeAt(i))) i++;
  const d0 = i;
  let seq = 0;
  while (i < n) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    i++;
  }
  const digits = i - d0;
  const m0 = i;
  while (i < n && isSpTab(v.charCodeAt(i))) i++;
  const m1 = i;
  while (i < n && !isSpTab(v.charCodeAt(i))) i++;
  const m2 = i;
  while (i < n && isSpTab(v.charCodeAt(i))) i++;
  if (digits < 1 || digits > 10 || m1 === m0 || m2 === m1 || i < n) throw new SipParseError('malformed CSeq');
  // RFC 3261 §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer
  // and less than 2**31.
  if (seq >= 2 ** 31) throw new SipParseError('CSeq number too large');
  return { seq, method: m2 - m1 === 8 && v.startsWith('REGISTER', m1) ? 'REGISTER' : v.slice(m1, m2) };
}

export abstract class SipMessage {
  headers: Header[];
  body: Buffer;
  /** where the message came from; null for messages we build */
  source: Source | null = null;

  constructor(headers: Header[], body: Buffer = EMPTY) {
    this.headers = headers;
    this.body = body;
  }

  abstract startLine(): string;
  abstract isRequest(): this is SipRequest;

  get(key: string): string | undefined {
    for (const h of this.headers) if (h.key === key) return h.value;
    return undefined;
  }

  getAll(key: string): string[] {
    const out: string[] = [];
    for (const h of this.headers) if (h.key === key) out.push(h.value);
    return out;
  }

  has(key: string): boolean {
    for (const h of this.headers) if (h.key === key) return true;
    return false;
  }

  /** Replaces every `key` header by one with `value`, where the first stood (else at the end). */
  set(key: string, value: string): this {
    this.invalidate(key);
    const header = { key, name: displayName(key), value };
    const out: Header[] = [];
    let placed = false;
    for (const h of this.headers) {
      if (h.key !== key) out.push(h);
      else if (!placed) {
        out.push(header);
        placed = true;
      }
    }
    if (!placed) out.push(header);
    this.headers = out;
    return this;
  }

  append(key: string, value: string): this {
    this.invalidate(key);
    this.headers.push({ key, name: displayName(key), value });
    return this;
  }

  /** Inserts before the first `key` header (a new top Via or Record-Route), else at the top. */
  prepend(key: string, value: string): this {
    this.invalidate(key);
    const idx = this.headers.findIndex((h) => h.key === key);
    this.headers.splice(idx < 0 ? 0 : idx, 0, { key, name: displayName(key), value });
    return this;
  }

  remove(key: string): this {
    this.invalidate(key);
    this.headers = this.headers.filter((h) => h.key !== key);
    return this;
  }

  /** Replaces the value of the first `key` header where it stands (a stamped top Via). */
  replaceFirst(key: string, value: string): this {
    const idx = this.headers.findIndex((h) => h.key === key);
    if (idx < 0) return this.append(key, value);
    this.invalidate(key);
    this.headers[idx] = { key, name: this.headers[idx]!.name, value };
    return this;
  }

  /** Removes the first `key` header (the top Via of a response being forwarded). */
  removeFirst(key: string): string | undefined {
    const idx = this.headers.findIndex((h) => h.key === key);
    if (idx < 0) return undefined;
    this.invalidate(key);
    return this.headers.splice(idx, 1)[0]!.value;
  }

  // Parsed forms of the headers a proxy reads, made on first use and dropped when the header
  // changes (one field each: a Map and a closure per lookup cost more than the parsing).
  private viaCache: Via | null = null;
  private cseqCache: CSeq | null = null;
  private fromCache: NameAddr | null = null;
  private toCache: NameAddr | null = null;

  private invalidate(key: string): void {
    switch (key) {
      case 'via': this.viaCache = null; break;
      case 'cseq': this.cseqCache = null; break;
      case 'from': this.fromCache = null; break;
      case 'to': this.toCache = null; break;
    }
  }

  /** The top Via (each list value is its own header entry after parsing). */
  via(): Via {
    if (this.viaCache === null) {
      const v = this.get('via');
      if (v === undefined) throw new SipParseError('missing Via');
      this.viaCache = parseVia(v);
    }
    return this.viaCache;
  }

  /**
   * Replaces the top Via with `value`, whose parsed form the caller already has (the stack
   * stamping `received`/`rport`): parseVia(value) would give the same Via again.
   */
  replaceTopVia(value: string, parsed: Via): void {
    this.replaceFirst('via', value);
    this.viaCache = parsed;
  }

  vias(): Via[] {
    return this.getAll('via').map(parseVia);
  }

  callId(): string {
    const v = this.get('call-id');
    if (v === undefined) throw new SipParseError('missing Call-ID');
    return v;
  }

  cseq(): CSeq {
    if (this.cseqCache === null) {
      const v = this.get('cseq');
      if (v === undefined) throw new SipParseError('missing CSeq');
      this.cseqCache = parseCSeq(v);
    }
    return this.cseqCache;
  }

  from(): NameAddr {
    if (this.fromCache === null) {
      const v = this.get('from');
      if (v === undefined) throw new SipParseError('missing From');
      this.fromCache = parseNameAddr(v);
    }
    return this.fromCache;
  }

  to(): NameAddr {
    if (this.toCache === null) {
      const v = this.get('to');
      if (v === undefined) throw new SipParseError('missing To');
      this.toCache = parseNameAddr(v);
    }
    return this.toCache;
  }

  fromTag(): string | null {
    return tagOf(this.from());
  }

  toTag(): string | null {
    return tagOf(this.to());
  }

  contacts(): NameAddr[] {
    return this.getAll('contact').filter((c) => c.trim() !== '*').map(parseNameAddr);
  }

  /** `name/subtype` of Content-Type in lower case, or null. */
  contentType(): string | null {
    const v = this.get('content-type');
    if (v === undefined) return null;
    const semi = v.indexOf(';');
    return (semi >= 0 ? v.slice(0, semi) : v).trim().toLowerCase();
  }

  /** Serializes with a Content-Length that matches the body (RFC 3261 §20.14). */
  toBuffer(): Buffer {
    let s = this.startLine() + '\r\n';
    for (const h of this.headers) {
      if (h.key === 'content-length') continue;
      s += h.name + ': ' + h.value + '\r\n';
    }
    s += 'Content-Length: ' + this.body.length + '\r\n\r\n';
    if (this.body.length === 0) return Buffer.from(s, 'latin1');
    const head = Buffer.from(s, 'latin1');
    return Buffer.concat([head, this.body], head.length + this.body.length);
  }

  toString(): string {
    return this.toBuffer().toString('latin1');
  }
}

export class SipRequest extends SipMessage {
  constructor(public method: string, public uri: string, headers: Header[], body?: Buffer) {
    super(headers, body);
  }

  startLine(): string {
    return `${this.method} ${this.uri} SIP/2.0`;
  }

  isRequest(): this is SipRequest {
    return true;
  }

  /** The Request-URI, parsed (and cached until `uri` changes). */
  requestUri(): SipUri {
    if (this.uriCache === null || this.uriCacheText !== this.uri) {
      this.uriCache = parseUri(this.uri);
      this.uriCacheText = this.uri;
    }
    return this.uriCache;
  }
  private uriCache: SipUri | null = null;
  private uriCacheText = '';

  /** A copy a proxy can change without touching the original (§16.6 step 1). */
  clone(): SipRequest {
    const r = new SipRequest(this.method, this.uri, this.headers.slice(), this.body);
    r.source = this.source;
    return r;
  }
}

export class SipResponse extends SipMessage {
  /**
   * true for a final response that depends on no state, such as a digest challenge: a
   * non-INVITE server transaction keeps it for T4 instead of Timer J, and a later
   * retransmitted request is answered afresh, as a stateless UAS answers (RFC 3261 §8.2.7).
   * See NonInviteServerTransaction.respond.
   */
  stateless = false;

  constructor(public status: number, public reason: string, headers: Header[], body?: Buffer) {
    super(headers, body);
  }

  startLine(): string {
    return `SIP/2.0 ${this.status} ${this.reason}`;
  }

  isRequest(): this is SipRequest {
    return false;
  }

  clone(): SipResponse {
    const r = new SipResponse(this.status, this.reason, this.headers.slice(), this.body);
    r.source = this.source;
    return r;
  }
}

export type SipMessageAny = SipRequest | SipResponse;
