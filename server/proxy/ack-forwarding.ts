/**
 * The ACK for a 2xx: a request of its own, end to end (RFC 3261 §13.2.2.4, §17.1.1.3), so no
 * transaction carries it; the proxy forwards it statelessly (§16.11 for this one request),
 * along the route set like any in-dialog request.
 */
import type { Logger } from 'pino';
import type { TransactionLayer } from '../sip/transaction/transaction-layer.js';
import type { TransportLayer } from '../sip/transport/transport-layer.js';
import { viaTransport } from '../sip/transport/types.js';
import type { FlowTokens } from './flow-token.js';
import type { ProxyHooks } from './hooks.js';
import { nextHop } from './next-hop.js';
import type { Resolver } from './resolver.js';
import { hash36, setMaxForwards } from './route-set.js';
import type { ScriptContext } from './script-context.js';

export interface AckForwarding {
  transports: TransportLayer;
  transactions: TransactionLayer;
  resolver: Resolver;
  tokens: FlowTokens;
  hooks: ProxyHooks;
  maxForwards: number;
}

export async function forwardAck(ctx: ScriptContext, d: AckForwarding, log: Logger): Promise<void> {
  const req = ctx.req;
  const target = await nextHop(ctx, d.transports, d.resolver, d.tokens);
  if (!target?.dest) return;
  const iface = d.transports.interfaceFor(target.dest.transport);
  if (!iface) return;
  const out = req.clone();
  setMaxForwards(req, out, d.maxForwards);
  // an ACK carrying the answer to an offer a 2xx made (late offer, RFC 3261 §13.2.1)
  if (req.body.length > 0 && req.contentType() === 'application/sdp') await d.hooks.ackOut(req, out, log);
  // The branch must be the same for retransmissions of this ACK: derive it from theirs.
  const theirs = req.via().params.get('branch') ?? req.callId();
  out.prepend('via', `SIP/2.0/${viaTransport(iface.transport)} ${iface.host}:${iface.port};branch=z9hG4bKsl${hash36(theirs)};rport`);
  d.transactions.send(out.toBuffer(), target.dest);
}
