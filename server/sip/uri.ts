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
const HOST = charSet('-.');

function allIn(s: string, set: Uint8Array): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || set[c] !== 1) return false;
    if (c === 37 && !(isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2)))) return false;
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

export function parseUri(s: string): SipUri {
  const colon = s.indexOf(':');
  if (colon <= 0) throw new SipParseError(`URI without scheme: ${s.slice(0, 40)}`);
  let scheme = s.slice(0, colon);
  if (scheme !== 'sip' && scheme !== 'sips') {
    scheme = scheme.toLowerCase();
    if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) throw new SipParseError('bad URI scheme');
  }
  if (scheme !== 'sip' && scheme !== 'sips') {
    const opaque = s.slice(colon + 1);
    if (opaque.length === 0 || /[\s<>"]/.test(opaque)) throw new SipParseError('bad URI');
    return { scheme, user: null, password: null, host: '', port: null, params: new Map(), headers: null, opaque };
  }
  let rest = s.slice(colon + 1);
  let user: string | null = null;
  let password: string | null = null;
  // The userinfo ends at the last '@': no later part of a SIP URI may contain a bare '@'.
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const pc = userinfo.indexOf(':');
    user = pc >= 0 ? userinfo.slice(0, pc) : userinfo;
    if (pc >= 0) {
      password = userinfo.slice(pc + 1);
      if (!allIn(password, PASSWORD)) throw new SipParseError('bad password in URI');
    }
    if (user.length === 0 || !allIn(user, USER)) throw new SipParseError('bad user in URI');
  }
  let headers: string | null = null;
  const q = rest.indexOf('?');
  if (q >= 0) {
    headers = rest.slice(q + 1);
    rest = rest.slice(0, q);
    if (!allIn(headers, HEADERS)) throw new SipParseError('bad headers in URI');
  }
  const params: Params = new Map();
  const semi = rest.indexOf(';');
  const hostport = semi >= 0 ? rest.slice(0, semi) : rest;
  if (semi >= 0) {
    for (const p of rest.slice(semi + 1).split(';')) {
      const eq = p.indexOf('=');
      const name = eq >= 0 ? p.slice(0, eq) : p;
      const value = eq >= 0 ? p.slice(eq + 1) : null;
      if (name.length === 0 || !allIn(name, PARAM) || (value !== null && (value.length === 0 || !allIn(value, PARAM)))) {
        throw new SipParseError('bad URI parameter');
      }
      params.set(name.toLowerCase(), value);
    }
  }
  let host = hostport;
  let port: number | null = null;
  const close = hostport.lastIndexOf(']');
  const pcolon = hostport.lastIndexOf(':');
  if (pcolon > close) {
    host = hostport.slice(0, pcolon);
    const ps = hostport.slice(pcolon + 1);
    if (!/^[0-9]{1,5}$/.test(ps) || Number(ps) > 65535) throw new SipParseError('bad port in URI');
    port = Number(ps);
  }
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
  return host.charCodeAt(0) === 91 || /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Host without IPv6 brackets, as the socket API wants it. */
export function socketHost(host: string): string {
  return host.charCodeAt(0) === 91 ? host.slice(1, -1) : host;
}
