/**
 * The default routing script with the trust decision taken out of its hands: a request is
 * trusted (may start taps and wsbridge) exactly when `when` says so, whatever route[AUTH]
 * concluded (the test gateway trusts loopback as a peer, so every caller passes it). For tests
 * of what trusted callers may do apart from how they are authenticated.
 */
import type { RequestContext, RoutingScript } from '../../server/routing/api.js';
import { script } from '../../server/routing/script.js';

export function trustingScript(when: (sip: RequestContext) => boolean = () => true): RoutingScript {
  return {
    ...script,
    request(sip) {
      const trusted = when(sip);
      // the script's own assignments are ignored: the test decides
      Object.defineProperty(sip, 'trusted', { get: () => trusted, set: () => undefined, configurable: true });
      return script.request(sip);
    },
  };
}
