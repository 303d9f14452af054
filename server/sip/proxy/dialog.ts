/**
 * The dialog of a call as the proxy sees it from the middle, and the BYE the gateway sends
 * itself when it ends a call (media timeout, a browser gone, the API): to each side along
 * its route set, with the identities and a CSeq that side's UA expects (RFC 3261 §12.2.1.1,
 * §15.1.1). Pure.
 */
import type { DialogSide } from '../../calls/call.js';
import { parseNameAddr } from '../address.js';
import { newBranch } from '../ids.js';
import { SipRequest, type Header, type SipResponse } from '../message.js';
import type { Destination } from '../transport/types.js';

/**
 * Splits a 2xx's Record-Route set at our own entries: what lies above them leads to the
 * callee, what lies below to the caller; each list nearest hop first.
 */
export function splitRouteSet(recordRoutes: string[], isOurs: (value: string) => boolean): { towardsCallee: string[]; towardsCaller: string[] } {
  const first = recordRoutes.findIndex(isOurs);
  if (first < 0) return { towardsCallee: [], towardsCaller: [] };
  let last = first;
  while (last + 1 < recordRoutes.length && isOurs(recordRoutes[last + 1]!)) last++;
  return { towardsCallee: recordRoutes.slice(0, first).reverse(), towardsCaller: recordRoutes.slice(last + 1) };
}

/** Both sides of an answered INVITE: from the request we forwarded and the 2xx it got. */
export function dialogFrom(
  invite: SipRequest,
  callerDest: Destination,
  ok: SipResponse,
  calleeDest: Destination,
  isOurs: (value: string) => boolean,
): { caller: DialogSide; callee: DialogSide } {
  const routes = splitRouteSet(ok.getAll('record-route'), isOurs);
  const contactOf = (v: string | undefined): string => {
    try {
      return v ? parseNameAddr(v).uriText : '';
    } catch {
      return '';
    }
  };
  return {
    caller: {
      target: contactOf(invite.get('contact')),
      dest: callerDest,
      route: routes.towardsCaller,
      identity: invite.get('from') ?? '',
      cseq: invite.cseq().seq,
    },
    callee: {
      target: contactOf(ok.get('contact')),
      dest: calleeDest,
      route: routes.towardsCallee,
      identity: ok.get('to') ?? '',
      cseq: 0,
    },
  };
}

/**
 * A BYE from one side's identity to the other: `to` is the side it goes to. The CSeq is one
 * more than the highest the sending side used, as that side's UA would have written it.
 */
export function buildBye(
  callId: string,
  dialog: { caller: DialogSide; callee: DialogSide },
  to: 'caller' | 'callee',
  via: { transport: string; host: string; port: number },
  reason: string,
): SipRequest {
  const target = dialog[to];
  const from = to === 'caller' ? dialog.callee : dialog.caller;
  const seq = Math.max(from.cseq + 1, 1);
  const h = (name: string, value: string): Header => ({ key: name.toLowerCase(), name, value });
  const headers: Header[] = [
    h('Via', `SIP/2.0/${via.transport} ${via.host}:${via.port};branch=${newBranch()};rport`),
    ...target.route.map((r) => h('Route', r)),
    h('Max-Forwards', '70'),
    h('From', from.identity),
    h('To', target.identity),
    h('Call-ID', callId),
    h('CSeq', `${seq} BYE`),
    // RFC 3326: why the gateway ended it
    h('Reason', `SIP;text="${reason.replace(/["\\\r\n]/g, ' ').slice(0, 100)}"`),
  ];
  from.cseq = seq;
  return new SipRequest('BYE', target.target, headers);
}
