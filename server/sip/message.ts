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

export abstract class SipMessage {
  headers: Header[];
  body: Buffer;
  /** where the message came from; null for messages we build */
  source: Source | null = null;
  private parsed: Map<string, unknown> | null = null;

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

  private invalidate(key: string): void {
    this.parsed?.delete(key);
  }

  private memo<T>(key: string, make: () => T): T {
    if (this.parsed === null) this.parsed = new Map();
    let v = this.parsed.get(key) as T | undefined;
    if (v === undefined) {
      v = make();
      this.parsed.set(key, v);
    }
    return v;
  }

  /** The top Via (each list value is its own header entry after parsing). */
  via(): Via {
    return this.memo('via', () => {
      const v = this.get('via');
      if (v === undefined) throw new SipParseError('missing Via');
      return parseVia(v);
    });
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
    return this.memo('cseq', () => {
      const v = this.get('cseq');
      if (v === undefined) throw new SipParseError('missing CSeq');
      const m = /^[ \t]*(\d{1,10})[ \t]+([^ \t]+)[ \t]*$/.exec(v);
      if (!m) throw new SipParseError('malformed CSeq');
      const seq = Number(m[1]);
      // RFC 3261 §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer
      // and less than 2**31.
      if (seq >= 2 ** 31) throw new SipParseError('CSeq number too large');
      return { seq, method: m[2]! };
    });
  }

  from(): NameAddr {
    return this.memo('from', () => {
      const v = this.get('from');
      if (v === undefined) throw new SipParseError('missing From');
      return parseNameAddr(v);
    });
  }

  to(): NameAddr {
    return this.memo('to', () => {
      const v = this.get('to');
      if (v === undefined) throw new SipParseError('missing To');
      return parseNameAddr(v);
    });
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
    if (this.uriCache === null || this.uriCache.text !== this.uri) {
      this.uriCache = { text: this.uri, uri: parseUri(this.uri) };
    }
    return this.uriCache.uri;
  }
  private uriCache: { text: string; uri: SipUri } | null = null;

  /** A copy a proxy can change without touching the original (§16.6 step 1). */
  clone(): SipRequest {
    const r = new SipRequest(this.method, this.uri, this.headers.slice(), this.body);
    r.source = this.source;
    return r;
  }
}

export class SipResponse extends SipMessage {
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
