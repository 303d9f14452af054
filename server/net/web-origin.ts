/**
 * Who may talk to the web server, by the names in the request: the Host header against the
 * configured names (DNS rebinding: a page from evil.example whose name now resolves to us
 * still says `Host: evil.example`), and a page's Origin against its own host and an allow
 * list (a page from elsewhere must not open the SIP WebSocket with the user's network
 * position). Pure: header text in, a decision out.
 */
import { isIP } from 'node:net';

/** The host name of a Host header or URL authority, lower case, without port or brackets. */
export function hostName(authority: string): string {
  const a = authority.trim().toLowerCase();
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined);
  const colon = a.indexOf(':');
  // more than one colon and no brackets: a bare IPv6 literal
  if (colon >= 0 && a.indexOf(':', colon + 1) < 0) return a.slice(0, colon);
  return a;
}

/**
 * Whether a Host header names us: with no configured names, any; otherwise one of them, an IP
 * literal (rebinding always goes through a name) or localhost (health checks).
 */
export function hostAllowed(host: string | undefined, allowedHosts: readonly string[]): boolean {
  if (allowedHosts.length === 0) return true;
  if (!host) return false;
  const name = hostName(host).replace(/\.$/, '');
  if (name === 'localhost' || isIP(name) !== 0) return true;
  return allowedHosts.some((h) => h.toLowerCase().replace(/\.$/, '') === name);
}

/**
 * Whether a page of `origin` may open the WebSocket: no Origin (a phone, a server) may; a
 * page of the same host as the request's Host header may, or of one of our configured names
 * (behind a proxy that rewrites Host); and any origin listed (exact scheme://host[:port], or
 * "*" for all).
 */
export function originAllowed(origin: string | undefined, host: string | undefined, allowedOrigins: readonly string[], allowedHosts: readonly string[] = []): boolean {
  if (origin === undefined || origin === '') return true;
  const o = origin.trim().toLowerCase();
  if (allowedOrigins.some((a) => a === '*' || a.toLowerCase().replace(/\/$/, '') === o)) return true;
  let url: URL;
  try {
    url = new URL(o);
  } catch {
    return false; // "null" (sandboxed pages, file://) and other non-URLs
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (allowedHosts.some((h) => h.toLowerCase().replace(/\.$/, '') === url.hostname)) return true;
  return host !== undefined && url.host === host.trim().toLowerCase();
}
