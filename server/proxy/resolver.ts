/**
 * Where a URI leads (a small part of RFC 3263: transport from the URI, the host's address,
 * the default port). Names are resolved only when the config allows it, and then through the
 * configured servers: a fuzzed Request-URI must not make us query the system's resolver.
 */
import dns from 'node:dns';
import net from 'node:net';
import type { Destination, TransportKind } from '../sip/transport/types.js';
import { socketHost, uriTransport, type SipUri } from '../sip/uri.js';

export interface ResolverOptions {
  enabled: boolean;
  servers: string[];
}

export class Resolver {
  private readonly dns: dns.promises.Resolver | null;

  constructor(opts: ResolverOptions) {
    if (!opts.enabled) {
      this.dns = null;
      return;
    }
    this.dns = new dns.promises.Resolver({ timeout: 2000, tries: 2 });
    if (opts.servers.length > 0) this.dns.setServers(opts.servers);
  }

  async resolve(uri: SipUri): Promise<Destination | null> {
    const t = uriTransport(uri);
    const transport: TransportKind = t === 'ws' || t === 'wss' || t === 'tcp' || t === 'tls' ? t : uri.scheme === 'sips' ? 'tls' : 'udp';
    const port = uri.port ?? (transport === 'tls' || transport === 'wss' ? 5061 : 5060);
    const maddr = uri.params.get('maddr');
    const host = socketHost(maddr ?? uri.host);
    if (net.isIP(host)) return { transport, address: host, port };
    if (host === 'localhost') return { transport, address: '127.0.0.1', port };
    if (!this.dns || host.endsWith('.invalid')) return null;
    try {
      const [address] = await this.dns.resolve4(host);
      return address ? { transport, address, port } : null;
    } catch {
      return null;
    }
  }
}
