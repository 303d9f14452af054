/**
 * The routing script: the OpenSIPS WebSocket tutorial's logic as TypeScript. Edit this file
 * to change how requests are routed; the core (transactions, forking, Record-Route, CANCEL,
 * media) does what the returned actions say. Checks that come before routing (auth, rate
 * limits) go in `stages` (see server/routing/stages.ts), a SipError thrown here is its reply.
 */
import type { Action, RequestContext, RoutingScript } from './api.js';
import { DST_WS, mediaFlagsFor, SRC_WS } from './flags.js';

/** The P-wsbridge-* headers are URL-encoded; a bad escape is taken as written. */
function decode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** Initial requests that must come from someone we know: a user or a trusted peer. */
const AUTHENTICATED = new Set(['INVITE', 'MESSAGE', 'SUBSCRIBE', 'REFER']);

/**
 * route[AUTH], as in Kamailio's default script: a trunk or PBX in sip.trustedPeers passes as
 * it is (allow_source_address); anyone else proves with digest credentials that they are the
 * user their From names (proxy_authorize, then $au == $fU), and the callee is told who called
 * (P-Asserted-Identity, RFC 3325). Returns the reply that ends the request, or null to go on.
 */
function routeAuth(sip: RequestContext): Action | null {
  if (sip.isTrustedPeer()) {
    sip.trusted = true;
    return null;
  }
  // identity is ours to assert: what an outsider wrote is not passed on
  sip.removeIdentity();
  // if (!proxy_authorize("$fd", "subscriber")) { proxy_challenge("$fd", "0"); exit; }
  if (!sip.proxyAuthorize()) return sip.proxyChallenge();
  // if ($au != $fU) { sl_send_reply("403", "Forbidden auth ID"); exit; }
  if (sip.authUser !== sip.fromUser) return sip.forbidAuthId();
  // consume_credentials(); append_hf("P-Asserted-Identity: <sip:$au@$fd>\r\n");
  sip.consumeCredentials();
  sip.assertIdentity();
  sip.trusted = true;
  return null;
}

export const script: RoutingScript = {
  // route { ... }
  async request(sip) {
    const req = sip.req;

    // if (proto == WS || proto == WSS) setflag(SRC_WS);
    if (sip.proto === 'ws' || sip.proto === 'wss') sip.setFlag(SRC_WS);

    if (req.method === 'REGISTER') {
      if (!sip.isMyself()) return sip.reply(403, 'Relaying Forbidden');
      // remember with the contact that it is a WebSocket client: lookup() restores it
      if (sip.isFlagSet(SRC_WS)) sip.setBranchFlag(DST_WS);
      return sip.save();
    }

    // sequential requests (has_totag): follow the Route set the core consumed (loose_route)
    if (sip.hasToTag()) {
      if (sip.routed) return sip.relay();
      if (req.method === 'ACK') return sip.drop(); // an ACK for nothing we know: absorb it
      return sip.reply(404, 'Not Here');
    }

    // CANCEL is matched to its INVITE by the core; relaying it cancels every branch
    if (req.method === 'CANCEL') return sip.relay();

    // An initial request whose Route set names only us (a phone using us as its outbound
    // proxy) is routed as if it had none; one naming other hops (after ours, or only others)
    // is refused, as in the OpenSIPS tutorial ("Preload Route denied"): we are no open relay.
    if (req.has('route')) return sip.reply(403, 'Preload Route denied');

    if (!sip.isMyself()) return sip.reply(403, 'Relaying Forbidden');

    // route(AUTH): calls, messages and subscriptions only from users and trusted peers
    if (AUTHENTICATED.has(req.method)) {
      const refused = routeAuth(sip);
      if (refused) return refused;
    }

    // requests for the gateway itself (keep-alive OPTIONS from phones and load balancers)
    const user = req.requestUri().user;
    if (user === null) {
      return req.method === 'OPTIONS' ? sip.reply(200) : sip.reply(404, 'Not Found');
    }

    // wsbridge (Nexmo): the gateway answers and bridges the caller to a WebSocket server named
    // by the P-wsbridge-* headers (a script may set them itself instead). Only for trusted
    // callers (authenticated users, trusted peers) and URLs in taps.allowedUrls: anyone else
    // gets a plain 503, the same as for a server that cannot be reached (no scanning through us)
    if (user === 'wsbridge' && req.method === 'INVITE') {
      const uri = req.get('p-wsbridge-websocket-uri');
      if (!uri) return sip.reply(400, 'Missing P-wsbridge-websocket-uri');
      if (!sip.mayTap(decode(uri))) return sip.reply(503, 'Service Unavailable');
      return sip.answerLocally('wsbridge', {
        uri: decode(uri),
        headers: decode(req.get('p-wsbridge-websocket-headers') ?? '{}'),
        contentType: decode(req.get('p-wsbridge-websocket-content-type') ?? 'audio/l16;rate=16000'),
      });
    }

    // lookup("location"): 404 for users we do not have, 480 for users not registered now
    const targets = await sip.lookup();
    if (targets === null) return sip.reply(404, 'Not Found');
    if (targets.length === 0) return sip.reply(480, 'Temporarily Unavailable');
    // an audio tap asked for by the caller: X-Audio-Stream: start <ws-url> <mix> <rate> [metadata],
    // honoured for trusted callers and URLs in taps.allowedUrls only; otherwise the call goes
    // on untapped (the refusal is logged, the caller is told nothing)
    const tap = req.get('x-audio-stream');
    return sip.relay(targets, { taps: req.method === 'INVITE' && tap && sip.mayTap(tap) ? [tap] : [] });
  },

  // branch_route: choose the media handling of each leg from where it comes and goes
  branch(sip, branch) {
    if (branch.toWebSocket) branch.setFlag(DST_WS);
    branch.media = mediaFlagsFor(sip.isFlagSet(SRC_WS), branch.isFlagSet(DST_WS));
  },

  // failure_route: a registered contact that does not answer at all is "unavailable"
  failure(sip, failure) {
    if (failure.status === 408 || failure.status === 503) return sip.reply(480, 'Temporarily Unavailable');
    return null;
  },
};
