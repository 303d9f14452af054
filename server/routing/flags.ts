/**
 * Named flags, as in the OpenSIPS WebSocket tutorial. Message flags live while a request is
 * routed; branch flags travel with a contact: set at REGISTER, saved with the binding, and
 * restored on the branch that lookup() makes for it.
 */

/** message flag: the request arrived over WebSocket (WS or WSS) */
export const SRC_WS = 1 << 0;
/** branch flag: the destination is a WebSocket client (saved at REGISTER, restored at lookup) */
export const DST_WS = 1 << 1;

const NAMES: [number, string][] = [[SRC_WS, 'SRC_WS'], [DST_WS, 'DST_WS']];

/** Flag names for logs: 3 -> ['SRC_WS', 'DST_WS'] */
export function flagNames(flags: number): string[] {
  return NAMES.filter(([f]) => (flags & f) !== 0).map(([, n]) => n);
}

/**
 * What the media layer does on one leg of a call, in rtpengine's flag language (the strings
 * the tutorial passes to rtpengine_offer/rtpengine_answer): `offer` rewrites the SDP sent
 * to the callee, `answer` the SDP sent back to the caller.
 */
export interface MediaFlags {
  offer: string;
  answer: string;
}

const PLAIN = 'RTP/AVP replace-session-connection replace-origin ICE=remove';
const WEBRTC = 'UDP/TLS/RTP/SAVPF ICE=force';

/**
 * The tutorial's choice per leg: a WebSocket side gets DTLS-SRTP with ICE, a UDP side plain
 * RTP without ICE; two WebSocket sides each end their DTLS in the gateway.
 */
export function mediaFlagsFor(srcWs: boolean, dstWs: boolean): MediaFlags {
  if (srcWs && dstWs) return { offer: 'ICE=force-relay DTLS=passive', answer: 'ICE=force-relay DTLS=passive' };
  if (srcWs) return { offer: PLAIN, answer: WEBRTC };
  if (dstWs) return { offer: WEBRTC, answer: PLAIN };
  return { offer: PLAIN, answer: PLAIN };
}
