/**
 * The default routing script with every request taken as trusted (sip.trusted): what the
 * core's authentication sets for an authenticated user or a trusted peer. For tests of what
 * trusted callers may do (taps and wsbridge from SIP) apart from how they are authenticated.
 * `when`: trust only the requests it accepts (default: all).
 */
import type { RequestContext, RoutingScript } from '../../server/routing/api.js';
import { script } from '../../server/routing/script.js';

export function trustingScript(when: (sip: RequestContext) => boolean = () => true): RoutingScript {
  return {
    ...script,
    request(sip) {
      if (when(sip)) sip.trusted = true;
      return script.request(sip);
    },
  };
}
