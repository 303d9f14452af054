/**
 * What the proxy does with a request's Route set before routing it (RFC 3261 §16.4), and the
 * requests it answers itself even when they may not travel further (§16.3 step 3). Pure.
 */
import { parseNameAddr } from '../sip/address.js';
import type { SipRequest } from '../sip/message.js';
import { uriTransport } from '../sip/uri.js';
import type { Locality } from './locality.js';
import type { RouteInfo } from './script-context.js';

/**
 * §16.4: a Request-URI we put in a Record-Route comes from a strict router (take the last
 * Route instead); then every top Route entry naming us is removed. The flow token of the
 * last one says how to reach the next hop when that is a WebSocket client.
 */
export function preprocessRoutes(req: SipRequest, locality: Locality): RouteInfo {
  const info: RouteInfo = { routed: false, token: null, tokenTransport: 'udp' };
  const ruri = req.requestUri();
  if (ruri.params.has('lr') && locality.isMyself(ruri)) {
    const routes = req.getAll('route');
    const last = routes[routes.length - 1];
    if (last !== undefined) {
      try {
        req.uri = parseNameAddr(last).uriText;
        req.headers.splice(req.headers.findLastIndex((h) => h.key === 'route'), 1);
      } catch {
        // a broken Route: leave the request as it is
      }
    }
  }
  for (;;) {
    const top = req.get('route');
    if (top === undefined) break;
    let uri;
    try {
      uri = parseNameAddr(top).uri;
    } catch {
      break;
    }
    if (!locality.isMyself(uri)) break;
    req.removeFirst('route');
    info.routed = true;
    info.token = uri.user;
    const t = uriTransport(uri);
    info.tokenTransport = t === 'ws' || t === 'wss' ? t : 'udp';
  }
  return info;
}

/** Requests we answer ourselves even with Max-Forwards 0 (§16.3 step 3; RFC 4475 zeromf). */
export function isForUs(req: SipRequest, locality: Locality): boolean {
  if (req.method === 'REGISTER') return true;
  const uri = req.requestUri();
  return req.method === 'OPTIONS' && uri.user === null && locality.isMyself(uri);
}

/** A UDP client whose Contact names another address than it sends from is behind NAT. */
export function isBehindNat(req: SipRequest, sourceAddress: string): boolean {
  const contact = req.get('contact');
  if (contact === undefined) return false;
  try {
    return parseNameAddr(contact).uri.host !== sourceAddress;
  } catch {
    return false;
  }
}

/** §16.6 step 3: the copy's Max-Forwards one less than the request's (or `dflt` when it had none). */
export function setMaxForwards(req: SipRequest, out: SipRequest, dflt: number): void {
  const mf = req.get('max-forwards');
  out.set('max-forwards', String(mf === undefined ? dflt : Math.max(0, Number(mf) - 1)));
}

/** FNV-1a, base 36: a short stable digest for derived branch ids. */
export function hash36(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}
