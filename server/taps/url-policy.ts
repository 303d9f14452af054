/**
 * Where a tap may connect: the guard between a URL someone asked for and the WebSocket the
 * gateway opens (issue 10, SSRF). Two ways in, two rules:
 *
 * - **SIP** (the routing script: X-Audio-Stream, wsbridge's P-wsbridge-websocket-uri,
 *   sip.tap()): the URL must match an entry of `taps.allowedUrls` (empty by default: taps from
 *   SIP are off), and the script asks `sip.mayTap()` first, which also wants the request to be
 *   trusted (an authenticated user or a trusted peer).
 * - **API** (POST /api/calls/:id/taps, behind the operator's token): any ws/wss URL, private
 *   addresses included; the operator is the one asking.
 *
 * Either way the host is resolved once, here, and the socket connects to exactly the address
 * that was checked (server/taps/tap-socket.ts pins it with a `lookup` that answers only that
 * address): no second DNS query that could answer differently (DNS rebinding).
 *
 * Allow-list entries (`taps.allowedUrls`), one URL each, compared with the URL after WHATWG
 * normalisation (lower-case host, punycode, numeric IPv4 forms such as 0x7f.1 made dotted,
 * `..` segments and %2e%2e removed):
 *   scheme    `ws` or `wss`, exactly;
 *   host      exactly (a name or an IP literal; "[::1]" for IPv6), or `*.example.com` (any
 *             name under example.com, not example.com itself), or `*` (any host);
 *   port      exactly; omitted means the scheme's default (80, 443);
 *   path      a prefix on segment boundaries: "/stream" allows /stream, /stream/, /stream/a,
 *             not /streamer; "/" or none allows every path. The query is not compared (tokens
 *             ride there); entries may not carry a query, fragment or credentials.
 * No regular expressions: what an entry allows is what it says.
 *
 * After resolving, an address in INTERNAL_RANGES (loopback, RFC 1918, unique-local,
 * link-local with the 169.254.169.254 metadata endpoint, unspecified, CGNAT, multicast) is
 * refused for SIP unless the matching entry names its host exactly (`ws://10.0.0.5:8090/`,
 * `ws://tap-server:8090/`): a wildcard entry reaches public addresses only.
 *
 * Names: a host the operator wrote (an exact allow-list entry, any API request) is resolved
 * as the system does (getaddrinfo: /etc/hosts, Docker's names); a host only a caller wrote
 * (matched by a wildcard) is resolved only when `sip.dns.enabled`, through `sip.dns.servers`,
 * as for Request-URIs: otherwise it is refused without any query.
 */
import { isIP } from 'node:net';
import { isInternalAddress } from '../net/address-class.js';
import { type AllowedUrl, AllowedUrlError, bareHost, entryMatches, parseAllowedUrl } from '../net/url-allow-list.js';

export { AllowedUrlError, parseAllowedUrl, type AllowedUrl };

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to its addresses (none: an empty list or a rejection). */
export type LookupFn = (host: string) => Promise<ResolvedAddress[]>;

export type TapOrigin = 'sip' | 'api';

/** Why a tap URL was refused: for the log (never for a SIP caller: no oracle). */
export type RefusalCode = 'bad_url' | 'not_allowed' | 'untrusted' | 'internal_address' | 'no_dns' | 'unresolved';

export class TapUrlRefused extends Error {
  override readonly name = 'TapUrlRefused';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

export interface TapUrlPolicyOptions {
  /** taps.allowedUrls */
  allowedUrls: readonly string[];
  /** resolves names the operator wrote (exact entries, API requests); default: none resolve */
  lookup?: LookupFn | null;
  /** resolves names only a caller wrote (wildcard matches); null: such names are refused (sip.dns.enabled false) */
  callerLookup?: LookupFn | null;
}

export class TapUrlPolicy {
  readonly allowed: readonly AllowedUrl[];
  private readonly lookup: LookupFn | null;
  private readonly callerLookup: LookupFn | null;

  /** Throws AllowedUrlError naming the first bad entry. */
  constructor(o: TapUrlPolicyOptions) {
    this.allowed = o.allowedUrls.map(parseAllowedUrl);
    this.lookup = o.lookup ?? null;
    this.callerLookup = o.callerLookup ?? null;
  }

  /** The entry allowing this URL (an exact host preferred over a wildcard), or null. Pure. */
  match(url: string | URL): AllowedUrl | null {
    let u: URL;
    try {
      u = typeof url === 'string' ? new URL(url) : url;
    } catch {
      return null;
    }
    if (u.hash || u.hostname.includes('*')) return null;
    let wild: AllowedUrl | null = null;
    for (const e of this.allowed) {
      if (!entryMatches(e, u)) continue;
      if (e.host !== null) return e;
      wild ??= e;
    }
    return wild;
  }

  /**
   * May a request start a tap to this URL from SIP? `trusted`: it came from an authenticated
   * user or a trusted peer. Pure (no DNS): the address is checked again when connecting.
   * Throws TapUrlRefused (code untrusted, bad_url, not_allowed) for the log.
   */
  checkSip(url: string, trusted: boolean): void {
    if (!trusted) throw new TapUrlRefused('untrusted', 'taps from SIP are only for authenticated users and trusted peers');
    if (this.allowed.length === 0) throw new TapUrlRefused('not_allowed', 'taps from SIP are off (taps.allowedUrls is empty)');
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TapUrlRefused('bad_url', 'not a URL');
    }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TapUrlRefused('bad_url', 'not a ws:// or wss:// URL');
    if (!this.match(u)) throw new TapUrlRefused('not_allowed', 'the URL matches no entry of taps.allowedUrls');
  }

  /**
   * The one address a tap to `url` connects to, checked for its origin (see the file's
   * comment). Resolves the host at most once. Throws TapUrlRefused.
   */
  async resolve(url: string, origin: TapOrigin): Promise<ResolvedAddress> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TapUrlRefused('bad_url', 'not a URL');
    }
    if ((u.protocol !== 'ws:' && u.protocol !== 'wss:') || u.hash || u.hostname.includes('*')) throw new TapUrlRefused('bad_url', 'not a ws:// or wss:// URL without a fragment');
    const host = bareHost(u.hostname);
    let entry: AllowedUrl | null = null;
    if (origin === 'sip') {
      entry = this.match(u);
      if (!entry) throw new TapUrlRefused('not_allowed', 'the URL matches no entry of taps.allowedUrls');
    }
    // an exact allow-list host or the operator's API: internal addresses are theirs to name
    const operatorNamed = origin === 'api' || entry?.host !== null;
    const family = isIP(host);
    let addresses: ResolvedAddress[];
    if (family !== 0) {
      addresses = [{ address: host, family: family as 4 | 6 }];
    } else {
      const lookup = operatorNamed ? this.lookup : this.callerLookup;
      if (!lookup) {
        throw new TapUrlRefused('no_dns', operatorNamed
          ? `host names are not resolved here: use an IP address instead of ${host}`
          : `host names only a caller wrote are not resolved (sip.dns.enabled is false): allow ${host} by its exact name`);
      }
      try {
        addresses = await lookup(host);
      } catch (e) {
        throw new TapUrlRefused('unresolved', `${host} does not resolve: ${(e as Error).message}`);
      }
      addresses = addresses.filter((a) => isIP(a.address) === a.family);
      if (addresses.length === 0) throw new TapUrlRefused('unresolved', `${host} does not resolve`);
    }
    if (!operatorNamed) {
      // every answer is checked, not only the one used: a mixed answer is a rebinding attempt
      const bad = addresses.find((a) => isInternalAddress(a.address));
      if (bad) throw new TapUrlRefused('internal_address', `${host} is ${bad.address}, an internal address (allow it by its exact host to reach it)`);
    }
    return addresses[0]!;
  }
}
