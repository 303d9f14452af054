/**
 * Starting a tap through the URL policy (url-policy.ts): the host resolved and checked once
 * for the request's origin, the tap pinned to that address. Every way in but the programmatic
 * TapService.start() goes through here: the API (origin "api"), the routing script's taps and
 * wsbridge (origin "sip").
 */
import type { TapStartOptions } from './options.js';
import type { TapService } from './tap-service.js';
import type { Tap } from './tap.js';
import type { TapOrigin, TapUrlPolicy } from './url-policy.js';

/** Throws TapUrlRefused (refused by the policy) or TapInputError (TapService.start's). */
export async function startChecked(taps: TapService, policy: TapUrlPolicy, callId: string, options: TapStartOptions, origin: TapOrigin): Promise<Tap> {
  const connectTo = await policy.resolve(options.url, origin);
  return taps.start(callId, { ...options, connectTo });
}
