/**
 * The taps a call asks for as it starts (the routing script's `relay(targets, { taps })`,
 * e.g. from an X-Audio-Stream header): the calls floor's TapStarter, on the gateway's
 * TapService. A bad request is refused and logged; the call goes on without it.
 */
import type { TapStarter } from './call-media.js';
import { ConfigError } from '../config/load.js';
import { startChecked } from '../taps/checked-start.js';
import { parseCommand, parseStartBody } from '../taps/options.js';
import type { TapService } from '../taps/tap-service.js';
import { TapUrlRefused, type TapUrlPolicy } from '../taps/url-policy.js';

/**
 * Taps from SIP go through the URL policy (taps.allowedUrls, the resolved address checked and
 * pinned); nothing of a refusal or failure goes back in SIP, it is logged here once.
 */
export function callTapStarter(taps: TapService, policy: TapUrlPolicy): TapStarter {
  return (call, request, log) => {
    void (async () => {
      try {
        const command = typeof request === 'string' ? parseCommand(request) : { action: 'start' as const, options: parseStartBody(request) };
        if (command.action !== 'start') throw new Error('a tap asked for by a call must be a start command');
        const tap = await startChecked(taps, policy, call.id, command.options, 'sip');
        log.info({ tap: tap.id }, 'audio tap requested for the call');
      } catch (e) {
        if (e instanceof TapUrlRefused) log.warn({ code: e.code, reason: e.message }, 'tap from SIP refused');
        else log.warn({ err: e }, "the call's audio tap request was refused");
      }
    })();
  };
}

/** Checks the config's taps.defaults as a tap's start options would be; throws ConfigError naming the fault. */
export function checkTapDefaults(defaults: Record<string, unknown>): void {
  try {
    parseStartBody({ url: 'ws://127.0.0.1/', mix: 'mono', rate: '8k', ...defaults }, { fromConfig: true });
  } catch (e) {
    throw new ConfigError(`invalid configuration:\n  taps.defaults: ${(e as Error).message}`);
  }
}
