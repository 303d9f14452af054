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

// sent-protocol with SWS around each SLASH, then LWS, then sent-by with SWS around COLON
const SENT = /^[ \t]*([\w.!%*+`'~-]+)[ \t]*\/[ \t]*([\w.!%*+`'~-]+)[ \t]*\/[ \t]*([\w.!%*+`'~-]+)[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?:[ \t]*:[ \t]*(\d{1,5}))?/;

export function parseVia(value: string): Via {
  const m = SENT.exec(value);
  if (!m) throw new SipParseError('malformed Via');
  const host = m[4]!.toLowerCase();
  if (!isValidHost(host)) throw new SipParseError('bad Via host');
  const port = m[5] !== undefined ? Number(m[5]) : null;
  if (port !== null && port > 65535) throw new SipParseError('bad Via port');
  const params: Params = new Map();
  const end = parseParams(value, m[0].length, params, false);
  if (end < value.length) throw new SipParseError('trailing characters in Via');
  return { protocol: m[1]!.toUpperCase(), version: m[2]!, transport: m[3]!.toUpperCase(), host, port, params };
}

export function formatVia(v: Via): string {
  const port = v.port !== null ? ':' + v.port : '';
  return `${v.protocol}/${v.version}/${v.transport} ${v.host}${port}${formatParams(v.params)}`;
}

export function viaBranch(v: Via): string | null {
  return v.params.get('branch') ?? null;
}
