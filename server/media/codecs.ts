/**
 * The audio codecs the bridge routes, and their two spellings: SDP rtpmap lines and
 * mediasoup RTP parameters. mediasoup does not transcode, so a call carries one codec that
 * both legs speak, plus RFC 4733 telephone-event at that codec's clock rate. Pure.
 */
import type { RtpCodecCapability, RtpCodecParameters } from 'mediasoup/types';

export interface SdpCodec {
  pt: number;
  /** encoding name as written (PCMU, opus, telephone-event...) */
  name: string;
  clockRate: number;
  channels: number | null;
  fmtp: string | null;
}

/**
 * mediasoup forwards only "media" codecs: its consumers drop every packet of a feature codec,
 * telephone-event among them (Consumer.cpp fills its supported payload types from
 * IsMediaCodec() only). So RFC 4733 events travel under the name of a media codec no call of
 * ours uses: the router believes them iLBC/8000, both legs keep their own telephone-event
 * payload types, and the packets pass untouched.
 */
const DTMF_CARRIER = 'audio/iLBC';

/** What the routers know: each call's codec must be one of these (RFC 3551 names). */
export const ROUTER_CODECS: RtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 111 },
  { kind: 'audio', mimeType: 'audio/G722', clockRate: 8000, preferredPayloadType: 9 },
  { kind: 'audio', mimeType: 'audio/PCMU', clockRate: 8000, preferredPayloadType: 0 },
  { kind: 'audio', mimeType: 'audio/PCMA', clockRate: 8000, preferredPayloadType: 8 },
  { kind: 'audio', mimeType: DTMF_CARRIER, clockRate: 8000, preferredPayloadType: 101 },
];

/**
 * mediasoup consumers send with the router's payload types, not the receiving party's. A
 * router is made per call, numbered like the first offer of the call: the offerer hears its
 * own numbers, and the answerer, offered the same numbers by us, uses them too (RFC 3264
 * §6.1: the answer SHOULD keep the offer's payload types).
 */
export function routerCodecsFor(offer: SdpCodec[]): RtpCodecCapability[] {
  // every call of a busy server offers one of a few codec lists: each is worked out once
  let key = '';
  for (const c of offer) key += `${c.name}/${c.clockRate}=${c.pt},`;
  const known = routerCodecsMemo.get(key);
  if (known) return known;
  const out = numberRouterCodecs(offer);
  // bounded: past that many different lists, start over
  if (routerCodecsMemo.size >= 64) routerCodecsMemo.clear();
  routerCodecsMemo.set(key, out);
  return out;
}

/** Lists given out by routerCodecsFor, shared by the calls that offer alike: read-only. */
const routerCodecsMemo = new Map<string, RtpCodecCapability[]>();

function numberRouterCodecs(offer: SdpCodec[]): RtpCodecCapability[] {
  const taken = new Set<number>();
  const out: RtpCodecCapability[] = [];
  const pending: RtpCodecCapability[] = [];
  for (const base of ROUTER_CODECS) {
    const match = offer.find((c) => isRoutable(c) && mimeType(c).toLowerCase() === base.mimeType.toLowerCase() && c.clockRate === base.clockRate);
    if (match && !taken.has(match.pt)) {
      taken.add(match.pt);
      out.push({ ...base, preferredPayloadType: match.pt });
    } else {
      pending.push(base);
    }
  }
  // the codecs the offer lacks keep their usual number, or any free dynamic one
  for (const base of pending) {
    let pt = base.preferredPayloadType!;
    if (taken.has(pt)) for (pt = 96; taken.has(pt) && pt < 128; pt++);
    taken.add(pt);
    out.push({ ...base, preferredPayloadType: pt });
  }
  return out;
}

const STATIC: Record<number, [string, number]> = { 0: ['PCMU', 8000], 8: ['PCMA', 8000], 9: ['G722', 8000] };

/** Static payload types may come without an rtpmap line (RFC 3551 §6). */
export function staticCodec(pt: number): SdpCodec | null {
  const s = STATIC[pt];
  return s ? { pt, name: s[0], clockRate: s[1], channels: null, fmtp: null } : null;
}

export function isDtmf(c: SdpCodec): boolean {
  return c.name.toLowerCase() === 'telephone-event';
}

/**
 * Codecs we can bridge: opus, G722, PCMU, PCMA, and telephone-event at 8 kHz (RFC 4733 lets
 * its clock differ from the audio's; browsers send 8 kHz events with opus when that is all
 * that was negotiated, and every phone speaks it).
 */
export function isRoutable(c: SdpCodec): boolean {
  const n = c.name.toLowerCase();
  if (n === 'opus') return c.clockRate === 48000;
  if (n === 'pcmu' || n === 'pcma' || n === 'g722') return c.clockRate === 8000;
  if (n === 'telephone-event') return c.clockRate === 8000;
  return false;
}

export function sameCodec(a: SdpCodec, b: SdpCodec): boolean {
  return a.name.toLowerCase() === b.name.toLowerCase() && a.clockRate === b.clockRate;
}

function mimeType(c: SdpCodec): string {
  const n = c.name.toLowerCase();
  if (n === 'telephone-event') return DTMF_CARRIER;
  return `audio/${n === 'opus' ? 'opus' : c.name.toUpperCase()}`;
}

/** mediasoup codec parameters for a codec as one leg writes it (its payload type). */
export function toRtpCodec(c: SdpCodec): RtpCodecParameters {
  const isOpus = c.name.toLowerCase() === 'opus';
  return {
    mimeType: mimeType(c),
    payloadType: c.pt,
    clockRate: c.clockRate,
    ...(isOpus ? { channels: 2 } : {}),
    // telephone-event's "0-16" and opus' useinbandfec stay between the endpoints (in SDP):
    // the router must not refuse a codec because a leg named different options
    parameters: {},
    rtcpFeedback: [],
  };
}

export function toCodecCapability(c: SdpCodec): RtpCodecCapability {
  const isOpus = c.name.toLowerCase() === 'opus';
  return {
    kind: 'audio',
    mimeType: mimeType(c),
    preferredPayloadType: c.pt,
    clockRate: c.clockRate,
    ...(isOpus ? { channels: 2 } : {}),
    parameters: {},
    rtcpFeedback: [],
  };
}

/** The codec set a call leg uses: its media codec first, then telephone-event if it has one. */
export interface LegCodecs {
  media: SdpCodec;
  dtmf: SdpCodec | null;
}

/**
 * After an answer: the answerer's first media codec that the offer had, and telephone-event
 * (8 kHz) when both have it. Each side keeps its own payload types. Null when nothing is
 * shared (488).
 */
export function negotiate(offered: SdpCodec[], answered: SdpCodec[]): { offerer: LegCodecs; answerer: LegCodecs } | null {
  for (const a of answered) {
    if (isDtmf(a) || !isRoutable(a)) continue;
    const o = offered.find((x) => sameCodec(x, a));
    if (!o) continue;
    const aDtmf = answered.find((x) => isDtmf(x) && isRoutable(x)) ?? null;
    const oDtmf = aDtmf ? (offered.find((x) => isDtmf(x) && isRoutable(x)) ?? null) : null;
    return {
      offerer: { media: o, dtmf: oDtmf && aDtmf ? oDtmf : null },
      answerer: { media: a, dtmf: oDtmf && aDtmf ? aDtmf : null },
    };
  }
  return null;
}

export function codecList(c: LegCodecs): SdpCodec[] {
  return c.dtmf ? [c.media, c.dtmf] : [c.media];
}
