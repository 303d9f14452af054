/**
 * Classes of IP addresses, for deciding who may use what: the "private" sources the embedded
 * demo answers (the machine itself and its LAN), operator-given CIDR lists (trusted peers,
 * allow-lists), and the addresses a URL taken from a message must never make us connect to.
 * Pure: no sockets, no DNS. Built on node's BlockList, which also matches IPv4-mapped IPv6.
 */
import { BlockList, isIP } from 'node:net';

/** "Private" is exactly: loopback, RFC 1918, RFC 4193 unique-local, link-local (v4 and v6). */
export const PRIVATE_RANGES: readonly string[] = [
  '127.0.0.0/8', '::1/128',
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16',
  'fc00::/7',
  '169.254.0.0/16', 'fe80::/10',
];

/**
 * Addresses an outgoing connection named by a request must not reach unless an operator
 * allowed them: the private ranges plus "this host"/unspecified, carrier-grade NAT (RFC 6598),
 * multicast and broadcast. Cloud metadata endpoints (169.254.169.254, fd00:ec2::254) fall in
 * the link-local and unique-local ranges.
 */
export const INTERNAL_RANGES: readonly string[] = [
  ...PRIVATE_RANGES,
  '0.0.0.0/8', '::/128', '100.64.0.0/10', '224.0.0.0/4', '255.255.255.255/32', 'ff00::/8',
];

export class CidrError extends Error {}

/** A set of CIDR ranges ("10.0.0.0/8", "2001:db8::/32") or single addresses. */
export class CidrSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(readonly ranges: readonly string[]) {
    for (const r of ranges) {
      const [addr = '', bits] = r.trim().split('/');
      const family = isIP(addr);
      if (family === 0) throw new CidrError(`not an IP address or CIDR range: ${JSON.stringify(r)}`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d+$/.test(bits))) {
        throw new CidrError(`bad prefix length in ${JSON.stringify(r)}`);
      }
      this.list.addSubnet(addr, prefix, type);
    }
    this.size = ranges.length;
  }

  /** Whether an address (v4, v6 or IPv4-mapped v6) falls in one of the ranges; false for non-IPs. */
  has(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    return this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

const privateSet = new CidrSet(PRIVATE_RANGES);
const internalSet = new CidrSet(INTERNAL_RANGES);

/** The machine itself or its LAN (the only sources the embedded demo answers). */
export function isPrivateAddress(address: string): boolean {
  return privateSet.has(address);
}

/** An address a request must not make us connect to (see INTERNAL_RANGES). */
export function isInternalAddress(address: string): boolean {
  return internalSet.has(address);
}
