/**
 * The routing script's `sip.mayTap(spec)` (issue 10): a tap or wsbridge asked for in SIP
 * starts only for a trusted request (an authenticated user or a trusted peer) and only to a
 * URL of taps.allowedUrls. Pure: the resolved address is checked when the tap connects
 * (url-policy.ts resolve()). A refusal is logged once, with its reason, and nothing of it
 * goes back to the caller.
 */
import type { TapGate } from '../proxy/script-context.js';
import { parseCommand, parseStartBody, TapInputError } from '../taps/options.js';
import { TapUrlRefused, type TapUrlPolicy } from '../taps/url-policy.js';

/** The URL a script's tap spec points at: a bare URL, a "start <url> ..." command, or options. */
export function tapSpecUrl(spec: string | Record<string, unknown>): string {
  if (typeof spec !== 'string') return parseStartBody(spec).url;
  const s = spec.trim();
  if (/^wss?:/i.test(s)) return s;
  const cmd = parseCommand(s);
  if (cmd.action !== 'start') throw new TapInputError(400, 'a tap asked for in SIP must be a start command');
  return cmd.options.url;
}

export function sipTapGate(policy: TapUrlPolicy): TapGate {
  return {
    mayTap(spec, trusted, log) {
      let host: string | null = null;
      try {
        const url = tapSpecUrl(spec);
        host = URL.canParse(url) ? new URL(url).host : null;
        policy.checkSip(url, trusted);
        return true;
      } catch (e) {
        if (!(e instanceof TapUrlRefused) && !(e instanceof TapInputError)) throw e;
        log.info({ code: e instanceof TapUrlRefused ? e.code : 'bad_request', host, reason: e.message }, 'tap from SIP refused');
        return false;
      }
    },
  };
}
