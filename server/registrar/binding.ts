/** A registered contact (RFC 3261 §10.3) with what we need to reach it again. */
import type { TransportKind } from '../sip/transport/types.js';

export interface Binding {
  /** address-of-record: the user part (one domain: the gateway's) */
  aor: string;
  /** the Contact URI as registered */
  contact: string;
  /** Contact header parameters other than expires and q, as written (e.g. +sip.instance, reg-id) */
  params: string;
  /** RFC 5626 instance and reg-id, to replace the binding of a re-connecting client */
  instance: string | null;
  regId: number | null;
  q: number | null;
  /** absolute expiry, ms since the epoch */
  expires: number;
  callId: string;
  cseq: number;
  /** branch flags saved with the contact (DST_WS...), restored at lookup (OpenSIPS save()/lookup()) */
  flags: number;
  /** where the REGISTER came from: the real address behind NAT, and the connection for WebSockets */
  received: { transport: TransportKind; address: string; port: number; flowId: string | null };
  /**
   * reach the contact at `received` rather than at its URI: connection-oriented clients
   * always, UDP ones when the REGISTER shows NAT (OpenSIPS fix_nated_register)
   */
  nat: boolean;
  userAgent: string | null;
  /** ms since the epoch */
  registeredAt: number;
}

/** Bindings tied to a connection cannot outlive it: a restart or a close ends them. */
export function isFlowBound(b: Binding): boolean {
  return b.received.flowId !== null && b.received.transport !== 'udp';
}
