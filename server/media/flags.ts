/**
 * rtpengine's flag language, the part the routing script speaks (rtpengine_offer/answer in
 * the OpenSIPS tutorial): which kind of leg the SDP being rewritten is going to. Pure.
 *
 *   "RTP/AVP ... ICE=remove"          -> a plain RTP leg (desk phone)
 *   "UDP/TLS/RTP/SAVPF ICE=force"     -> a WebRTC leg (browser)
 *   "ICE=force-relay DTLS=passive"    -> same kind as the other side (both browsers)
 */
import type { LegKind } from './sdp.js';

export interface ParsedFlags {
  /** kind of the leg receiving this SDP; null: the same kind as the sender's */
  kind: LegKind | null;
  /** the flags as given, for logs */
  raw: string;
}

export function parseFlags(flags: string | null | undefined): ParsedFlags {
  const raw = (flags ?? '').trim();
  const tokens = raw.split(/\s+/).filter(Boolean);
  let kind: LegKind | null = null;
  for (const t of tokens) {
    const u = t.toUpperCase();
    if (u === 'RTP/AVP' || u === 'RTP/AVPF') kind = 'rtp';
    else if (u === 'UDP/TLS/RTP/SAVPF' || u === 'UDP/TLS/RTP/SAVP' || u === 'RTP/SAVPF') kind = 'webrtc';
    else if (u === 'ICE=REMOVE' && kind === null) kind = 'rtp';
    else if ((u === 'ICE=FORCE' || u === 'DTLS=PASSIVE' || u === 'DTLS=ACTIVE') && kind === null) kind = 'webrtc';
  }
  // "ICE=force-relay DTLS=passive" alone: keep the sender's kind (WS <-> WS)
  if (tokens.some((t) => t.toUpperCase() === 'ICE=FORCE-RELAY') && !tokens.some((t) => /\//.test(t))) kind = null;
  return { kind, raw };
}
