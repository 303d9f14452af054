/**
 * The DNS side of the tap URL policy (url-policy.ts): the two resolvers it is given, and the
 * `lookup` a tap's socket connects with so that it reaches the address that was checked and
 * nothing else (no second query; TLS still names the host for SNI and the certificate).
 */
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { LookupFn, ResolvedAddress } from './url-policy.js';

/** getaddrinfo, as the system resolves (/etc/hosts, Docker's embedded DNS): for names the operator wrote. */
export const systemLookup: LookupFn = async (host) => {
  const all = await dns.promises.lookup(host, { all: true, verbatim: true });
  return all.filter((a) => a.family === 4 || a.family === 6).map((a) => ({ address: a.address, family: a.family as 4 | 6 }));
};

/** The gateway's own resolver (sip.dns): for names only a caller wrote; null when sip.dns.enabled is false. */
export function gatewayDnsLookup(o: { enabled: boolean; servers: string[] }): LookupFn | null {
  if (!o.enabled) return null;
  const r = new dns.promises.Resolver({ timeout: 2000, tries: 2 });
  if (o.servers.length > 0) r.setServers(o.servers);
  return async (host) => {
    if (host.endsWith('.invalid')) return [];
    const v4 = await r.resolve4(host).catch(() => [] as string[]);
    if (v4.length > 0) return v4.map((address) => ({ address, family: 4 as const }));
    const v6 = await r.resolve6(host);
    return v6.map((address) => ({ address, family: 6 as const }));
  };
}

/**
 * A `lookup` for net/tls.connect (passed through `ws`) that answers only `to`, whatever the
 * name: the socket goes where the policy looked. Handles both call shapes (`all: true` with
 * Node's family autoselection, and the single-address one).
 */
export function pinnedLookup(to: ResolvedAddress): LookupFunction {
  return ((_host: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    if (options.all) callback(null, [{ address: to.address, family: to.family }]);
    else callback(null, to.address, to.family);
  }) as LookupFunction;
}
