/** Requests derived from other requests: ACK for a non-2xx, CANCEL (RFC 3261 §17.1.1.3, §9.1). Pure. */
import { SipRequest, type Header, type SipResponse } from './message.js';

function copy(req: SipRequest, keys: readonly string[], onlyFirst: ReadonlySet<string>): Header[] {
  const out: Header[] = [];
  const seen = new Set<string>();
  for (const h of req.headers) {
    if (!keys.includes(h.key)) continue;
    if (onlyFirst.has(h.key)) {
      if (seen.has(h.key)) continue;
      seen.add(h.key);
    }
    out.push(h);
  }
  return out;
}

const ONLY_TOP_VIA = new Set(['via']);

/**
 * §17.1.1.3: the ACK a client transaction sends for a 300-699: same Request-URI, Call-ID,
 * From, top Via (same branch) and Route as the INVITE, To from the response, CSeq method ACK.
 */
export function buildAckForError(invite: SipRequest, res: SipResponse): SipRequest {
  const headers = copy(invite, ['via', 'from', 'call-id', 'route'], ONLY_TOP_VIA);
  headers.push({ key: 'to', name: 'To', value: res.get('to') ?? invite.get('to') ?? '' });
  headers.push({ key: 'cseq', name: 'CSeq', value: `${invite.cseq().seq} ACK` });
  headers.push({ key: 'max-forwards', name: 'Max-Forwards', value: '70' });
  return new SipRequest('ACK', invite.uri, headers);
}

/** §9.1: CANCEL with the INVITE's Request-URI, Call-ID, To, From, CSeq number, top Via and Route. */
export function buildCancel(invite: SipRequest, reason?: string): SipRequest {
  const headers = copy(invite, ['via', 'from', 'to', 'call-id', 'route'], ONLY_TOP_VIA);
  headers.push({ key: 'cseq', name: 'CSeq', value: `${invite.cseq().seq} CANCEL` });
  headers.push({ key: 'max-forwards', name: 'Max-Forwards', value: '70' });
  // RFC 3326: say why (e.g. another branch answered: SIP;cause=200;text="Call completed elsewhere")
  if (reason) headers.push({ key: 'reason', name: 'Reason', value: reason });
  return new SipRequest('CANCEL', invite.uri, headers);
}
