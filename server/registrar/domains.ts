/**
 * The domains the registrar keeps bindings for: the configured names and the advertised
 * address, plus every address of the machine and "localhost" (bound to a wildcard address we
 * are reached at any of them). A REGISTER for any other domain is refused before any
 * challenge (RFC 3261 §10.3 step 1: "the registrar ... MUST examine the Request-URI to
 * determine whether it has access to bindings for the domain"; here the To's, the AOR's).
 */
import os from 'node:os';

export class ServedDomains {
  private readonly hosts = new Set<string>();

  constructor(names: readonly string[]) {
    for (const n of names) {
      const h = n.toLowerCase();
      this.hosts.add(h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
    }
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) this.hosts.add(a.family === 'IPv6' ? `[${a.address.toLowerCase()}]` : a.address);
    }
    this.hosts.add('localhost');
  }

  has(host: string): boolean {
    return this.hosts.has(host) || this.hosts.has(host.toLowerCase());
  }
}
