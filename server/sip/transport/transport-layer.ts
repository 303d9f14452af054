/**
 * The transports together: where messages arrive, how a destination is reached (a live flow
 * first, then a datagram), and the addresses we put in Via and Record-Route. Arriving
 * messages, closed flows and socket errors are events: the layers above subscribe.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { isDottedQuad } from '../uri.js';
import { UdpTransport } from './udp.js';
import type { Flow } from './ws.js';
import type { Destination, Sender, Source, TransportKind } from './types.js';

export interface TransportEvents {
  /** a datagram or WebSocket message arrived */
  message: [buf: Buffer, source: Source];
  /** a connection closed: what was bound to it (registrations, calls, branches) goes */
  flowClosed: [flow: Flow];
  /** a socket failed (logged; the transport goes on) */
  transportError: [err: Error, where: string];
}

/** An address and port we can be reached on with a transport, as written in SIP headers. */
export interface SipInterface {
  transport: TransportKind;
  /** advertised host (what peers can reach), IPv6 in brackets */
  host: string;
  port: number;
}

export class TransportLayer extends EventEmitter<TransportEvents> implements Sender {
  private readonly udp: UdpTransport[] = [];
  private readonly flows = new Map<string, Flow>();
  readonly interfaces: SipInterface[] = [];

  /** Entry point of every message of every transport (UDP sockets, WebSocket flows). */
  readonly receive = (buf: Buffer, source: Source): void => {
    this.emit('message', buf, source);
  };

  async listenUdp(address: string, port: number, advertise: string): Promise<SipInterface> {
    const t = new UdpTransport(address, port, this.receive, (e) => this.emit('transportError', e, 'udp'));
    await t.listen();
    this.udp.push(t);
    const iface: SipInterface = { transport: 'udp', host: bracket(advertise), port: t.localPort };
    this.interfaces.push(iface);
    return iface;
  }

  addInterface(iface: SipInterface): void {
    this.interfaces.push({ ...iface, host: bracket(iface.host) });
  }

  /** Random, not counted: a flow id must not be guessable from another (it names a connection). */
  nextFlowId(): string {
    return randomBytes(9).toString('base64url');
  }

  flowOpened(flow: Flow): void {
    this.flows.set(flow.id, flow);
  }

  flowClosed(flow: Flow): void {
    if (this.flows.get(flow.id) === flow) this.flows.delete(flow.id);
    this.emit('flowClosed', flow);
  }

  flow(id: string): Flow | undefined {
    return this.flows.get(id);
  }

  /** Closes every connection from `address` (a source just banned); how many. */
  closeFlowsFrom(address: string): number {
    let n = 0;
    for (const f of [...this.flows.values()]) {
      if (f.remoteAddress === address) {
        f.close();
        n++;
      }
    }
    return n;
  }

  get flowCount(): number {
    return this.flows.size;
  }

  interfaceFor(transport: TransportKind): SipInterface | undefined {
    return this.interfaces.find((i) => i.transport === transport);
  }

  /**
   * Sends over the destination's flow when it has one (RFC 7118 §5, RFC 5626 §5.3);
   * connection-oriented destinations without a live flow cannot be reached (we do not open
   * outbound WebSocket connections). Datagrams go out of the socket of the right family.
   */
  send(buf: Buffer, dest: Destination): boolean {
    if (dest.flowId) {
      const flow = this.flows.get(dest.flowId);
      if (flow) return flow.send(buf);
      if (dest.transport !== 'udp') return false;
    }
    if (dest.transport !== 'udp') return false;
    // IP literals only (names were resolved before): a colon means IPv6
    const family = dest.address.includes(':') ? 6 : 4;
    const sock = this.udp.length === 1 ? this.udp[0] : (this.udp.find((u) => u.family === family) ?? this.udp[0]);
    if (!sock || (family === 4 && !isDottedQuad(dest.address))) return false;
    return sock.send(buf, dest.port, dest.address);
  }

  async close(): Promise<void> {
    for (const f of this.flows.values()) f.close();
    this.flows.clear();
    await Promise.all(this.udp.map((u) => u.close()));
  }
}


export function bracket(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}
