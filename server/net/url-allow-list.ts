/**
 * Allow-list entries for URLs the gateway may be asked to connect to (`taps.allowedUrls`):
 * parsing an entry and matching a URL against it. The syntax is documented in
 * server/taps/url-policy.ts, which applies it. Pure; here on the ground floor because the
 * config checks its entries when it loads.
 */
import { isIP } from 'node:net';

/** One parsed `taps.allowedUrls` entry. */
export interface AllowedUrl {
  /** the entry as written */
  text: string;
  scheme: 'ws:' | 'wss:';
  /** an exact host (as URL.hostname writes it), or null for a wildcard */
  host: string | null;
  /** `*.example.com`: ".example.com"; `*`: "" (any host); null for an exact host */
  suffix: string | null;
  port: number;
  /** "/" or a path without its trailing slash, e.g. "/stream" */
  path: string;
}

export class AllowedUrlError extends Error {
  override readonly name = 'AllowedUrlError';
}

const WILDCARD = 'x-allowed-url-wildcard';

function defaultPort(scheme: string): number {
  return scheme === 'wss:' ? 443 : 80;
}

export function bareHost(hostname: string): string {
  return hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
}

/** Parses one allow-list entry (throws AllowedUrlError with the reason). */
export function parseAllowedUrl(entry: string): AllowedUrl {
  const text = entry.trim();
  // the wildcard is swapped for a plain label so that the URL parser checks the rest
  const m = /^(wss?:\/\/)\*(\.|(?=[:/]|$))/i.exec(text);
  let u: URL;
  try {
    u = new URL(m ? `${m[1]}${WILDCARD}${m[2]}${text.slice(m[0].length)}` : text);
  } catch {
    throw new AllowedUrlError(`not a URL: ${JSON.stringify(entry)}`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new AllowedUrlError(`${JSON.stringify(entry)}: ws:// or wss:// expected`);
  if (u.username || u.password) throw new AllowedUrlError(`${JSON.stringify(entry)}: no credentials in an allowed URL`);
  if (u.search || u.hash || text.includes('?') || text.includes('#')) throw new AllowedUrlError(`${JSON.stringify(entry)}: no query or fragment in an allowed URL (the path is a prefix, the query is not compared)`);
  if (u.hostname.includes('*')) throw new AllowedUrlError(`${JSON.stringify(entry)}: a wildcard is only "*" or "*.domain" at the start of the host`);
  let host: string | null = u.hostname;
  let suffix: string | null = null;
  if (m) {
    host = null;
    suffix = m[2] === '.' ? u.hostname.slice(WILDCARD.length) : '';
    if (suffix !== '' && (suffix.length < 2 || isIP(suffix.slice(1)) !== 0)) throw new AllowedUrlError(`${JSON.stringify(entry)}: "*." must be followed by a domain`);
  }
  const path = u.pathname.length > 1 && u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname;
  return { text: entry, scheme: u.protocol, host, suffix, port: u.port ? Number(u.port) : defaultPort(u.protocol), path: path || '/' };
}

function pathMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  return path === prefix || path.startsWith(prefix + '/');
}

export function entryMatches(e: AllowedUrl, u: URL): boolean {
  if (u.protocol !== e.scheme) return false;
  if ((u.port ? Number(u.port) : defaultPort(u.protocol)) !== e.port) return false;
  if (!pathMatches(e.path, u.pathname)) return false;
  const h = u.hostname;
  if (e.host !== null) return h === e.host;
  if (e.suffix === '') return true;
  // "*.example.com": a name with at least one more label, never an IP literal
  return isIP(bareHost(h)) === 0 && h.endsWith(e.suffix!) && h.length > e.suffix!.length;
}
