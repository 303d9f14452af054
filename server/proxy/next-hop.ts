/**
 * Where a branch goes: a target's destination resolved from its URI (RFC 3263 via the
 * resolver), or for a request without targets the next hop its Route set or Request-URI
 * names (§16.5, §16.6 steps 6-7), a flow token of ours (signed: ./flow-token.ts) first.
 */
import type { Target } from '../routing/api.js';
import { parseNameAddr } from '../sip/address.js';
import type { TransportLayer } from '../sip/transport/transport-layer.js';
import type { Destination } from '../sip/transport/types.js';
import type { FlowTokens } from './flow-token.js';
import type { Resolver } from './resolver.js';
import type { ScriptContext } from './script-context.js';

export async function nextHop(ctx: ScriptContext, transports: TransportLayer, resolver: Resolver, tokens: FlowTokens): Promise<Target | null> {
  const req = ctx.req;
  const top = req.get('route');
  let dest: Destination | null = null;
  if (top === undefined && ctx.route.token) {
    // a token we did not sign names nothing: the Request-URI decides (and is checked like any)
    dest = tokens.read(ctx.route.token, ctx.route.tokenTransport);
    if (dest?.flowId && !transports.flow(dest.flowId)) dest = null; // that connection closed
  }
  if (!dest) {
    try {
      const uri = top !== undefined ? parseNameAddr(top).uri : req.requestUri();
      dest = await resolver.resolve(uri);
    } catch {
      dest = null;
    }
  }
  return dest ? { uri: req.uri, dest, flags: 0, binding: null } : null;
}

export async function resolveTarget(resolver: Resolver, target: Target): Promise<Destination | null> {
  try {
    return await resolver.resolve(parseNameAddr(`<${target.uri}>`).uri);
  } catch {
    return null;
  }
}
