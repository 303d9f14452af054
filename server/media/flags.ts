/**
 * How the media layer handles one leg of a call, as the routing script says it: typed media
 * modes (what rtpengine_offer/rtpengine_answer flags said in the OpenSIPS tutorial). A mode
 * names the kind of leg the SDP being rewritten goes to. Pure.
 *
 *   'rtp'     -> a plain RTP leg (desk phone): RTP/AVP, no ICE ("RTP/AVP ... ICE=remove")
 *   'webrtc'  -> a WebRTC leg (browser): DTLS-SRTP with ICE ("UDP/TLS/RTP/SAVPF ICE=force")
 *   'same'    -> the same kind as the sender's (both browsers: "ICE=force-relay DTLS=passive")
 */
import type { LegKind } from './sdp.js';

export const MEDIA_MODES = ['rtp', 'webrtc', 'same'] as const;
export type MediaMode = (typeof MEDIA_MODES)[number];

/** `offer` rewrites the SDP sent to the callee, `answer` the SDP sent back to the caller. */
export interface MediaFlags {
  offer: MediaMode;
  answer: MediaMode;
}

/** A media mode that is not one: names it, so a script's typo is seen where it is made. */
export class MediaModeError extends Error {
  constructor(readonly mode: string) {
    super(`unknown media mode "${mode}" (known: ${MEDIA_MODES.join(', ')})`);
    this.name = 'MediaModeError';
  }
}

export function isMediaMode(v: unknown): v is MediaMode {
  return typeof v === 'string' && (MEDIA_MODES as readonly string[]).includes(v);
}

/** Checks a script's media flags at run time (a script in plain JavaScript skips the compiler). */
export function checkMediaFlags(flags: MediaFlags): MediaFlags {
  for (const mode of [flags.offer, flags.answer]) if (!isMediaMode(mode)) throw new MediaModeError(String(mode));
  return flags;
}

export interface ParsedFlags {
  /** kind of the leg receiving this SDP; null: the same kind as the sender's */
  kind: LegKind | null;
  /** the mode as given, for logs */
  raw: string;
}

/** The leg kind a mode asks for; no mode keeps the sender's kind. Throws MediaModeError. */
export function parseFlags(mode: MediaMode | string | null | undefined): ParsedFlags {
  if (mode === null || mode === undefined || mode === 'same') return { kind: null, raw: mode ?? '' };
  if (mode === 'rtp' || mode === 'webrtc') return { kind: mode, raw: mode };
  throw new MediaModeError(mode);
}
