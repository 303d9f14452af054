/**
 * The one dialog model (RFC 3261 §12): both sides of an INVITE dialog, each with what it
 * takes to send it an in-dialog request ourselves. The proxy keeps one from the middle (from
 * the request it forwarded and the 2xx it got), the local endpoint one as the UAS (§12.1.1);
 * both send the BYE that ends a call the gateway decided to end (§15.1.1). Pure.
 */
import { parseNameAddr } from './address.js';
import { newBranch } from './ids.js';
import { SipRequest, type Header, type SipResponse } from './message.js';
import type { Destination } from './transport/types.js';

/** The two ends of a call: the one that sent the INVITE, and the one it reached. */
export type Side = 'caller' | 'callee';

export function otherSide(s: Side): Side {
  return s === 'caller' ? 'callee' : 'caller';
}

/** How to send an in-dialog request to one side ourselves (RFC 3261 §12.2.1.1). */
export interface DialogSide {
  /** remote target: the side's Contact URI */
  target: string;
  /** where requests to it go (its connection, or the address it sends from) */
  dest: Destination;
  /** Route headers towards it (Record-Route entries between us and it, nearest first) */
  route: string[];
  /** its own header as it wrote it: From for the caller, To (with tag) for the callee */
  identity: string;
  /** highest CSeq it has used in this dialog */
  cseq: number;
}

/** An INVITE dialog: its Call-ID and its two sides. */
export interface Dialog {
  callId: string;
  caller: DialogSide;
  callee: DialogSide;
}

/** The via a request we originate carries: one of our interfaces. */
export interface ViaAddress {
  transport: string;
  host: string;
  port: number;
}

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

function contactOf(v: string | undefined): string {
  try {
    return v ? parseNameAddr(v).uriText : '';
  } catch {
    // no usable Contact: no request can be sent to that side
    return '';
  }
}

/** Both sides of an answered INVITE seen from the middle: the request we forwarded and its 2xx. */
export function dialogFrom(invite: SipRequest, callerDest: Destination, ok: SipResponse, calleeDest: Destination, isOurs: (value: string) => boolean): Dialog {
  const routes = splitRouteSet(ok.getAll('record-route'), isOurs);
  return {
    callId: invite.callId(),
    caller: { target: contactOf(invite.get('contact')), dest: callerDest, route: routes.towardsCaller, identity: invite.get('from') ?? '', cseq: invite.cseq().seq },
    callee: { target: contactOf(ok.get('contact')), dest: calleeDest, route: routes.towardsCallee, identity: ok.get('to') ?? '', cseq: 0 },
  };
}

/**
 * The dialog of an INVITE the gateway answered itself (the callee side is us). §12.1.1: "The
 * route set MUST be set to the list of URIs in the Record-Route header field from the
 * request, taken in order"; the remote target is the request's Contact.
 */
export function uasDialog(invite: SipRequest, ok: SipResponse, callerDest: Destination, ourContact: string): Dialog {
  return {
    callId: invite.callId(),
    caller: { target: contactOf(invite.get('contact')), dest: callerDest, route: invite.getAll('record-route'), identity: invite.get('from') ?? '', cseq: invite.cseq().seq },
    // the gateway itself: nothing is sent to this side, its dest is where it is reached from
    callee: { target: contactOf(ourContact), dest: callerDest, route: [], identity: ok.get('to') ?? '', cseq: 0 },
  };
}

/**
 * A BYE from one side's identity to the other: `to` is the side it goes to. The CSeq is one
 * more than the highest the sending side used, as that side's UA would have written it.
 */
export function buildBye(dialog: Dialog, to: Side, via: ViaAddress, reason: string): SipRequest {
  const target = dialog[to];
  const from = dialog[otherSide(to)];
  const seq = Math.max(from.cseq + 1, 1);
  const h = (name: string, value: string): Header => ({ key: name.toLowerCase(), name, value });
  const headers: Header[] = [
    h('Via', `SIP/2.0/${via.transport} ${via.host}:${via.port};branch=${newBranch()};rport`),
    ...target.route.map((r) => h('Route', r)),
    h('Max-Forwards', '70'),
    h('From', from.identity),
    h('To', target.identity),
    h('Call-ID', dialog.callId),
    h('CSeq', `${seq} BYE`),
    // RFC 3326: why the gateway ended it
    h('Reason', `SIP;text="${reason.replace(/["\\\r\n]/g, ' ').slice(0, 100)}"`),
  ];
  from.cseq = seq;
  return new SipRequest('BYE', target.target, headers);
}
