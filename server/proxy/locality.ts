/**
 * is_myself: which URIs name this gateway. An address of ours with one of our ports, or with
 * no port at all (`REGISTER sip:10.0.0.5`, whatever port we listen on); another port on our
 * address is another SIP element sharing it (127.0.0.1 in tests). A configured domain counts
 * on any port.
 */
import os from 'node:os';
import type { SipInterface } from '../sip/transport/transport-layer.js';
import type { SipUri } from '../sip/uri.js';

export class Locality {
  private readonly domains: Set<string>;
  private readonly addresses = new Set<string>();
  private readonly ports = new Set<number>();

  constructor(domains: string[], private readonly interfaces: SipInterface[]) {
    this.domains = new Set(domains.map((d) => d.toLowerCase()));
    this.refresh();
  }

  /** Re-reads interfaces (call after every transport is listening). */
  refresh(): void {
    this.addresses.clear();
    this.ports.clear();
    for (const i of this.interfaces) {
      this.addresses.add(i.host.toLowerCase());
      this.ports.add(i.port);
    }
    // Bound to a wildcard address, we are also every address of the machine.
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) this.addresses.add(a.family === 'IPv6' ? `[${a.address}]` : a.address);
    }
    this.addresses.add('localhost');
  }

  isMyself(uri: SipUri): boolean {
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return false;
    if (this.domains.has(uri.host)) return true;
    if (!this.addresses.has(uri.host)) return false;
    return uri.port === null || this.ports.has(uri.port);
  }

  /** The domain names and addresses we answer for (for the API and logs). */
  describe(): { domains: string[]; interfaces: SipInterface[] } {
    return { domains: [...this.domains], interfaces: this.interfaces };
  }
}
