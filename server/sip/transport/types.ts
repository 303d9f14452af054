/** What the SIP layers know of transports: kinds, addresses, flows. Only transport files touch sockets. */

export type TransportKind = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** Where a message came from, or where one goes. */
export interface Endpoint {
  transport: TransportKind;
  address: string;
  port: number;
}

export interface Source extends Endpoint {
  /** the local address and port the message arrived on */
  localAddress: string;
  localPort: number;
  /**
   * Connection-oriented transports: the connection the message came over. Requests to a
   * WebSocket client must go back over it (RFC 7118 §5, RFC 5626 flows).
   */
  flowId: string | null;
}

/** A destination for sending: an address, or a flow (connection) to reuse when alive. */
export interface Destination extends Endpoint {
  flowId?: string | null;
}

export function isReliable(t: TransportKind): boolean {
  return t !== 'udp';
}

export function isWebSocket(t: TransportKind): boolean {
  return t === 'ws' || t === 'wss';
}

/** Via transport token for a kind (RFC 3261 §18, RFC 7118 §5.2). */
export function viaTransport(t: TransportKind): string {
  return t.toUpperCase();
}

/** How the layers above hand a message to the transports (the transaction layer's view of them). */
export interface Sender {
  /** false when the message cannot be sent (e.g. the WebSocket flow is gone) */
  send(buf: Buffer, dest: Destination): boolean;
}
