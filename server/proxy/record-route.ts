/**
 * Record-Route (RFC 3261 §16.6 step 4, double Record-Route of RFC 5658 when a request
 * changes transport) carrying flow tokens (the idea of RFC 5626 §5.3): the entry facing a
 * WebSocket client (or a UDP phone behind NAT) names how to reach it, so in-dialog requests
 * towards a `.invalid` contact find their connection (tokens: ./flow-token.ts). Pure.
 */
import type { SipInterface } from '../sip/transport/transport-layer.js';

export function recordRouteUri(iface: SipInterface, token: string | null, double: boolean): string {
  const user = token ? token + '@' : '';
  const transport = iface.transport === 'udp' ? '' : `;transport=${iface.transport}`;
  return `<sip:${user}${iface.host}:${iface.port}${transport};lr${double ? ';r2=on' : ''}>`;
}

/**
 * The Record-Route values to prepend, top first: the entry facing the callee on top (the
 * callee's route set starts there), the one facing the caller below it (the caller's route
 * set is the reverse). One entry when both sides use the same interface and need no token.
 */
export function recordRoutes(
  inbound: SipInterface,
  inboundToken: string | null,
  outbound: SipInterface,
  outboundToken: string | null,
): string[] {
  const double = inbound !== outbound || inboundToken !== null || outboundToken !== null;
  if (!double) return [recordRouteUri(outbound, null, false)];
  return [recordRouteUri(outbound, outboundToken, true), recordRouteUri(inbound, inboundToken, true)];
}
