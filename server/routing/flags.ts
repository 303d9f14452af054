/**
 * Named flags, as in the OpenSIPS WebSocket tutorial. Message flags live while a request is
 * routed; branch flags travel with a contact: set at REGISTER, saved with the binding, and
 * restored on the branch that lookup() makes for it.
 */
import type { MediaFlags } from '../media/flags.js';

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
 * The tutorial's choice per leg: a WebSocket side gets DTLS-SRTP with ICE, a UDP side plain
 * RTP without ICE; two WebSocket sides each end their DTLS in the gateway.
 */
export function mediaFlagsFor(srcWs: boolean, dstWs: boolean): MediaFlags {
  if (srcWs && dstWs) return { offer: 'same', answer: 'same' };
  if (srcWs) return { offer: 'rtp', answer: 'webrtc' };
  if (dstWs) return { offer: 'webrtc', answer: 'rtp' };
  return { offer: 'rtp', answer: 'rtp' };
}
