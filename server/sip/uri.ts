/**
 * SIP and SIPS URIs (RFC 3261 §19.1, §25.1). Other schemes (tel, urn, http...) are kept
 * opaque: a proxy routes on them or refuses them (416), it does not need their structure.
 */
import { SipParseError } from './errors.js';
import { formatParams, type Params } from './grammar.js';

export interface SipUri {
  /** lower-case scheme: `sip`, `sips`, or another one kept opaque */
  scheme: string;
  /** the user part as written (still %-escaped), null when absent */
  user: string | null;
  password: string | null;
  /** host in lower case; IPv6 references keep their brackets */
  host: string;
  port: number | null;
  params: Params;
  /** raw `?h=v&...` part without the '?', null when absent */
  headers: string | null;
  /** for schemes other than sip/sips: everything after the colon */
  opaque?: string;
}

function charSet(chars: string, alnum = true): Uint8Array {
  const t = new Uint8Array(128);
  if (alnum) for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') t[c.charCodeAt(0)] = 1;
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  return t;
}
const MARK = "-_.!~*'()";
const USER = charSet(MARK + '&=+$,;?/%');
const PASSWORD = charSet(MARK + '&=+$,%');
const PARAM = charSet(MARK + '[]/:&+$%');
const HEADERS = charSet(MARK + '[]/?:+$%=&');

/** allIn(s.slice(from, to), set): a %-escape must be complete inside the range. */
function allInRange(s: string, from: number, to: number, set: Uint8Array): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || set[c] !== 1) return false;
    if (c === 37 && !(i + 2 < to && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2)))) return false;
  }
  return true;
}
function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Accepts hostname, IPv4address and IPv6reference (RFC 3261 §25.1). One pass: it runs for every URI. */
export function isValidHost(h: string): boolean {
  const n = h.length;
  if (n === 0) return false;
  if (h.charCodeAt(0) === 91) {
    if (h.charCodeAt(n - 1) !== 93 || n < 4) return false;
    let colon = false;
    for (let i = 1; i < n - 1; i++) {
      const c = h.charCodeAt(i);
      if (c === 58) colon = true;
      else if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46)) return false;
    }
    return colon;
  }
  // labels of letters, digits and inner hyphens, separated by single dots (a trailing dot is allowed)
  let labelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = h.charCodeAt(i);
    if (c === 46) {
      if (i === labelStart || h.charCodeAt(i - 1) === 45) return false;
      labelStart = i + 1;
    } else if (c === 45) {
      if (i === labelStart) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122))) {
      return false;
    }
  }
  return h.charCodeAt(n - 1) !== 45;
}

/** The last index of char `c` in s[from..to] going down from `to`, or -1 (String#lastIndexOf is a slow runtime call). */
function lastIndex(s: string, c: number, to: number, from: number): number {
  for (let i = to; i >= from; i--) if (s.charCodeAt(i) === c) return i;
  return -1;
}

/**
 * Every From, To, Contact and Request-URI of every message goes through here, so it works
 * on indices into `s` and slices only the parts it keeps; what it accepts and rejects is
 * that of splitting at '@', '?', ';' and ':' in turn (the comments name each step).
 */
export function parseUri(s: string): SipUri {
  const colon = s.indexOf(':');
  if (colon <= 0) throw new SipParseError(`URI without scheme: ${s.slice(0, 40)}`);
  let scheme: string;
  if (colon === 3 && s.startsWith('sip')) scheme = 'sip';
  else if (colon === 4 && s.startsWith('sips')) scheme = 'sips';
  else {
    scheme = s.slice(0, colon).toLowerCase();
    if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) throw new SipParseError('bad URI scheme');
  }
  if (scheme !== 'sip' && scheme !== 'sips') {
    const opaque = s.slice(colon + 1);
    if (opaque.length === 0 || /[\s<>"]/.test(opaque)) throw new SipParseError('bad URI');
    return { scheme, user: null, password: null, host: '', port: null, params: new Map(), headers: null, opaque };
  }
  const n = s.length;
  let user: string | null = null;
  let password: string | null = null;
  // The userinfo ends at the last '@': no later part of a SIP URI may contain a bare '@'.
  let rest = colon + 1;
  const at = lastIndex(s, 64 /* @ */, n - 1, rest);
  if (at >= 0) {
    let pc = s.indexOf(':', rest);
    if (pc >= at) pc = -1;
    const userEnd = pc >= 0 ? pc : at;
    if (pc >= 0) {
      if (!allInRange(s, pc + 1, at, PASSWORD)) throw new SipParseError('bad password in URI');
      password = s.slice(pc + 1, at);
    }
    if (userEnd === rest || !allInRange(s, rest, userEnd, USER)) throw new SipParseError('bad user in URI');
    user = s.slice(rest, userEnd);
    rest = at + 1;
  }
  // headers: from the first '?' after the userinfo
  let headers: string | null = null;
  let end = s.indexOf('?', rest);
  if (end >= 0) {
    if (!allInRange(s, end + 1, n, HEADERS)) throw new SipParseError('bad headers in URI');
    headers = s.slice(end + 1);
  } else end = n;
  // parameters: from the first ';' before the headers, each `name[=value]`
  const params: Params = new Map();
  let semi = s.indexOf(';', rest);
  if (semi >= end) semi = -1;
  const hostEnd = semi >= 0 ? semi : end;
  if (semi >= 0) {
    let p = semi + 1;
    for (;;) {
      let pe = s.indexOf(';', p);
      if (pe < 0 || pe > end) pe = end;
      let eq = s.indexOf('=', p);
      if (eq >= pe) eq = -1;
      const nameEnd = eq >= 0 ? eq : pe;
      if (nameEnd === p || !allInRange(s, p, nameEnd, PARAM) || (eq >= 0 && (eq + 1 === pe || !allInRange(s, eq + 1, pe, PARAM)))) {
        throw new SipParseError('bad URI parameter');
      }
      params.set(s.slice(p, nameEnd).toLowerCase(), eq >= 0 ? s.slice(eq + 1, pe) : null);
      if (pe === end) break;
      p = pe + 1;
    }
  }
  // hostport: a port after the last ':' unless that colon is inside an IPv6 reference
  let host: string;
  let port: number | null = null;
  const pcolon = lastIndex(s, 58 /* : */, hostEnd - 1, rest);
  const close = lastIndex(s, 93 /* ] */, hostEnd - 1, rest);
  if (pcolon > close) {
    host = s.slice(rest, pcolon);
    const digits = hostEnd - pcolon - 1;
    let value = 0;
    for (let i = pcolon + 1; i < hostEnd; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) {
        value = -1;
        break;
      }
      value = value * 10 + (c - 48);
    }
    if (digits < 1 || digits > 5 || value < 0 || value > 65535) throw new SipParseError('bad port in URI');
    port = value;
  } else host = s.slice(rest, hostEnd);
  if (!isValidHost(host)) throw new SipParseError(`bad host in URI: ${host.slice(0, 40)}`);
  return { scheme, user, password, host: host.toLowerCase(), port, params, headers };
}

export function formatUri(u: SipUri): string {
  if (u.opaque !== undefined) return `${u.scheme}:${u.opaque}`;
  let out = u.scheme + ':';
  if (u.user !== null) out += u.password !== null ? `${u.user}:${u.password}@` : `${u.user}@`;
  out += u.host;
  if (u.port !== null) out += ':' + u.port;
  out += formatParams(u.params);
  if (u.headers !== null) out += '?' + u.headers;
  return out;
}

/** %-decodes a URI component (user parts are compared unescaped, RFC 3261 §19.1.4). */
export function unescapeUri(s: string): string {
  if (s.indexOf('%') < 0) return s;
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** `transport` parameter in lower case, or null. */
export function uriTransport(u: SipUri): string | null {
  const t = u.params.get('transport');
  return t ? t.toLowerCase() : null;
}

export function isIpLiteral(host: string): boolean {
  return host.charCodeAt(0) === 91 || isDottedQuad(host);
}

/** /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/ without the expression: asked of every Contact and every datagram we send. */
export function isDottedQuad(s: string): boolean {
  let i = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (s.charCodeAt(i) !== 46) return false;
      i++;
    }
    const start = i;
    while (i < s.length && i - start < 4) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      i++;
    }
    if (i === start || i - start > 3) return false;
  }
  return i === s.length;
}

/** Host without IPv6 brackets, as the socket API wants it. */
export function socketHost(host: string): string {
  return host.charCodeAt(0) === 91 ? host.slice(1, -1) : host;
}
