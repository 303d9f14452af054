/** The Via header (RFC 3261 §20.42, §25.1; `received`/`rport` of RFC 3581). */
import { SipParseError } from './errors.js';
import { formatParams, parseParams, type Params } from './grammar.js';
import { isValidHost } from './uri.js';

export interface Via {
  protocol: string;
  version: string;
  /** upper-case transport: UDP, TCP, TLS, WS, WSS, SCTP... */
  transport: string;
  host: string;
  port: number | null;
  params: Params;
}

/** "z9hG4bK": branches made by RFC 3261 elements start with it (§8.1.1.7). */
export const MAGIC_COOKIE = 'z9hG4bK';

/** sent-protocol chars: RFC 3261 token as the original expression spelled it, [\w.!%*+`'~-] */
const PROTO = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.!%*+`'~-") PROTO[c.charCodeAt(0)] = 1;

function isProtoChar(c: number): boolean {
  return c < 128 && PROTO[c] === 1;
}

function isHostChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 45;
}

function isIpv6Char(c: number): boolean {
  return (c >= 48 && c <= 58) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46;
}

function skipSpTab(s: string, i: number): number {
  while (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9) i++;
  return i;
}

/** End of a run of sent-protocol chars from `i` (== i when there is none). */
function protoEnd(s: string, i: number): number {
  while (i < s.length && isProtoChar(s.charCodeAt(i))) i++;
  return i;
}

/**
 * Parses one via-parm. Every message has one, so this is a scanner rather than the regular
 * expression it replaced; it accepts exactly what that expression did:
 * `^[ \t]*(proto)[ \t]*\/[ \t]*(proto)[ \t]*\/[ \t]*(proto)[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?:[ \t]*:[ \t]*(\d{1,5}))?`
 * (sent-protocol with SWS around each SLASH, then LWS, then sent-by with SWS around COLON),
 * then the parameters.
 */
export function parseVia(value: string): Via {
  let protocol: string;
  let version: string;
  let transport: string;
  let i: number;
  // the usual spelling, with the strings shared
  if (value.startsWith('SIP/2.0/UDP ')) {
    protocol = 'SIP';
    version = '2.0';
    transport = 'UDP';
    i = 12;
  } else {
    const p0 = skipSpTab(value, 0);
    const p1 = protoEnd(value, p0);
    let j = skipSpTab(value, p1);
    if (p1 === p0 || value.charCodeAt(j) !== 47) throw new SipParseError('malformed Via');
    const v0 = skipSpTab(value, j + 1);
    const v1 = protoEnd(value, v0);
    j = skipSpTab(value, v1);
    if (v1 === v0 || value.charCodeAt(j) !== 47) throw new SipParseError('malformed Via');
    const t0 = skipSpTab(value, j + 1);
    const t1 = protoEnd(value, t0);
    if (t1 === t0) throw new SipParseError('malformed Via');
    protocol = value.slice(p0, p1).toUpperCase();
    version = value.slice(v0, v1);
    transport = value.slice(t0, t1).toUpperCase();
    i = t1;
    const c = value.charCodeAt(i);
    if (c !== 32 && c !== 9) throw new SipParseError('malformed Via');
  }
  i = skipSpTab(value, i);
  // sent-by host: an IPv6 reference or a name / IPv4 address
  const h0 = i;
  if (value.charCodeAt(i) === 91) {
    i++;
    while (isIpv6Char(value.charCodeAt(i))) i++;
    if (i === h0 + 1 || value.charCodeAt(i) !== 93) throw new SipParseError('malformed Via');
    i++;
  } else {
    while (isHostChar(value.charCodeAt(i))) i++;
    if (i === h0) throw new SipParseError('malformed Via');
  }
  const host = value.slice(h0, i).toLowerCase();
  // optional [ \t]* ':' [ \t]* 1*5DIGIT; without the digits nothing of it is taken
  let port: number | null = null;
  {
    const colon = skipSpTab(value, i);
    if (value.charCodeAt(colon) === 58) {
      const d0 = skipSpTab(value, colon + 1);
      let d = d0;
      let n = 0;
      while (d < d0 + 5) {
        const c = value.charCodeAt(d);
        if (!(c >= 48 && c <= 57)) break; // NaN past the end, too
        n = n * 10 + (c - 48);
        d++;
      }
      if (d > d0) {
        port = n;
        i = d;
      }
    }
  }
  if (!isValidHost(host)) throw new SipParseError('bad Via host');
  if (port !== null && port > 65535) throw new SipParseError('bad Via port');
  const params: Params = new Map();
  const end = i < value.length ? parseParams(value, i, params, false) : i;
  if (end < value.length) throw new SipParseError('trailing characters in Via');
  return { protocol, version, transport, host, port, params };
}

export function formatVia(v: Via): string {
  const port = v.port !== null ? ':' + v.port : '';
  return `${v.protocol}/${v.version}/${v.transport} ${v.host}${port}${formatParams(v.params)}`;
}

export function viaBranch(v: Via): string | null {
  return v.params.get('branch') ?? null;
}
