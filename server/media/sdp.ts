/**
 * SDP as the bridge sees it (RFC 4566, 3264): the first audio m-line of a description
 * reduced to what a leg needs (addresses, codecs, direction, ICE and DTLS, MID, SSRC), and
 * the SDP we write for each kind of leg. Parsing and writing lines is sdp-transform's job;
 * this file decides what goes in them. Pure.
 */
import sdpTransform from 'sdp-transform';
import { isRoutable, staticCodec, type SdpCodec } from './codecs.js';

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
/** webrtc: ICE + DTLS-SRTP + rtcp-mux (a browser); rtp: plain RTP/AVP (a desk phone) */
export type LegKind = 'webrtc' | 'rtp';

export interface Fingerprint {
  algorithm: string;
  value: string;
}

/** The media of one party, read from its SDP. */
export interface RemoteMedia {
  kind: LegKind;
  protocol: string;
  /** c= address (0.0.0.0 on old-style hold) and m= port */
  address: string;
  port: number;
  /** RFC 3605 a=rtcp port, when given */
  rtcpPort: number | null;
  rtcpAddress: string | null;
  rtcpMux: boolean;
  /** every codec offered/answered, in order */
  codecs: SdpCodec[];
  direction: Direction;
  ice: { ufrag: string; pwd: string } | null;
  fingerprints: Fingerprint[];
  setup: 'actpass' | 'active' | 'passive' | 'holdconn' | null;
  mid: string | null;
  ssrc: number | null;
  cname: string | null;
  /** the id this party uses for urn:ietf:params:rtp-hdrext:sdes:mid, if any */
  midExtId: number | null;
  /** o= line: a new version means a new description (RFC 3264 §8) */
  origin: { sessionId: string; version: number };
  /** number of m-lines before the audio one, and all m-lines' types (others get port 0) */
  mediaIndex: number;
  mlines: { type: string; protocol: string; payloads: string; mid: string | null }[];
}

export const MID_EXT = 'urn:ietf:params:rtp-hdrext:sdes:mid';
/**
 * mediasoup writes the MID header extension with its own fixed id (1 for audio) and keeps a
 * consumer's extension only when the receiver uses that same id. An answer may not renumber
 * the offer's extensions (RFC 8285 §6), so: we offer MID as id 1, and answer a browser's MID
 * only if it chose 1 too; otherwise its RTP is routed by its a=ssrc.
 */
export const MID_EXT_ID = 1;

export class SdpError extends Error {
  constructor(message: string, readonly status = 488) {
    super(message);
    this.name = 'SdpError';
  }
}

type Media = sdpTransform.MediaDescription;

export function parseRemote(text: string): RemoteMedia {
  let s: sdpTransform.SessionDescription;
  try {
    s = sdpTransform.parse(text);
  } catch {
    throw new SdpError('unreadable SDP', 400);
  }
  const media = s.media ?? [];
  // SRTP keyed by DTLS (RFC 5763: a fingerprint, UDP/TLS/...) is a browser's; SRTP keyed by
  // SDES a=crypto (RFC 4568) we cannot do. A phone offering best-effort SRTP repeats the
  // stream as RTP/AVP on the same port (Polycom, Grandstream OSRTP): that one is ours.
  const dtls = (x: Media): boolean => /TLS/.test(x.protocol ?? '') || (x.fingerprint ?? s.fingerprint) !== undefined;
  const srtp = (x: Media): boolean => /SAVP/.test(x.protocol ?? '');
  const idx = media.findIndex((x) => x.type === 'audio' && x.port !== 0 && (!srtp(x) || dtls(x)));
  if (idx < 0) {
    const audio = media.filter((x) => x.type === 'audio');
    if (audio.some((x) => x.port !== 0)) throw new SdpError('SRTP with SDES keys (a=crypto) is not supported: RTP/AVP or DTLS-SRTP only');
    // RFC 3264 §6: port zero rejects (or, in an offer, disables) the stream
    if (audio.length > 0) throw new SdpError('the audio stream is declined (port 0)');
    throw new SdpError('no audio stream in the SDP');
  }
  const m = media[idx]!;
  const protocol = m.protocol ?? 'RTP/AVP';
  const ice = (m.iceUfrag ?? s.iceUfrag) && (m.icePwd ?? s.icePwd) ? { ufrag: String(m.iceUfrag ?? s.iceUfrag), pwd: String(m.icePwd ?? s.icePwd) } : null;
  // by the transport, not by ICE: a phone may add ICE to RTP/AVP (linphone), and is answered
  // without it (RFC 8445 §5.1: no ICE in the answer, no ICE on the call)
  const kind: LegKind = srtp(m) && dtls(m) ? 'webrtc' : 'rtp';
  const codecs = readCodecs(m);
  const fp = m.fingerprint ?? s.fingerprint;
  const ssrcLine = (m.ssrcs ?? []).find((x) => x.attribute === 'cname') ?? (m.ssrcs ?? [])[0];
  const midExt = (m.ext ?? []).find((e) => e.uri === MID_EXT);
  const address = m.connection?.ip ?? s.connection?.ip ?? '0.0.0.0';
  const rtcp = m.rtcp as { port: number; address?: string } | undefined;
  return {
    kind,
    protocol,
    address,
    port: m.port,
    rtcpPort: rtcp?.port ?? null,
    rtcpAddress: rtcp?.address ?? null,
    rtcpMux: m.rtcpMux !== undefined,
    codecs,
    direction: readDirection(m, s, address),
    ice,
    fingerprints: fp ? [{ algorithm: fp.type, value: fp.hash }] : [],
    setup: (m.setup ?? (s as { setup?: string }).setup ?? null) as RemoteMedia['setup'],
    mid: m.mid !== undefined ? String(m.mid) : null,
    ssrc: ssrcLine ? Number(ssrcLine.id) : null,
    cname: ssrcLine?.attribute === 'cname' ? String(ssrcLine.value) : null,
    midExtId: midExt ? midExt.value : null,
    origin: { sessionId: String(s.origin?.sessionId ?? '0'), version: Number(s.origin?.sessionVersion ?? 0) },
    mediaIndex: idx,
    mlines: media.map((x) => ({ type: x.type, protocol: x.protocol, payloads: String(x.payloads ?? ''), mid: x.mid !== undefined ? String(x.mid) : null })),
  };
}

function readCodecs(m: Media): SdpCodec[] {
  const pts = String(m.payloads ?? '').split(/\s+/).filter(Boolean).map(Number);
  const out: SdpCodec[] = [];
  for (const pt of pts) {
    const rtp = (m.rtp ?? []).find((r) => r.payload === pt);
    const fmtp = (m.fmtp ?? []).find((f) => f.payload === pt)?.config ?? null;
    if (rtp) {
      out.push({ pt, name: rtp.codec, clockRate: rtp.rate ?? 8000, channels: rtp.encoding ? Number(rtp.encoding) : null, fmtp });
    } else {
      const st = staticCodec(pt);
      if (st) out.push({ ...st, fmtp });
    }
  }
  return out;
}

function readDirection(m: Media, s: sdpTransform.SessionDescription, address: string): Direction {
  const d = (m.direction ?? (s as { direction?: string }).direction ?? 'sendrecv') as Direction;
  // RFC 3264 §8.4 (and RFC 2543 before it): c=0.0.0.0 puts the stream on hold
  if (address === '0.0.0.0' && (m.protocol ?? '').indexOf('SAVPF') < 0) return d === 'sendrecv' ? 'inactive' : d === 'sendonly' ? 'sendonly' : 'inactive';
  return d;
}

/** What a leg says back: the mirror of a direction (RFC 3264 §6.1). */
export function answerDirection(offered: Direction, wanted: Direction = 'sendrecv'): Direction {
  const canSend = offered === 'sendrecv' || offered === 'recvonly';
  const canRecv = offered === 'sendrecv' || offered === 'sendonly';
  const send = canSend && (wanted === 'sendrecv' || wanted === 'sendonly');
  const recv = canRecv && (wanted === 'sendrecv' || wanted === 'recvonly');
  return send && recv ? 'sendrecv' : send ? 'sendonly' : recv ? 'recvonly' : 'inactive';
}

/** Codecs of an offer we can carry, in the offerer's order. */
export function routableCodecs(codecs: SdpCodec[]): SdpCodec[] {
  return codecs.filter(isRoutable);
}

export interface IceCandidate {
  foundation: string;
  priority: number;
  ip: string;
  port: number;
  protocol: 'udp' | 'tcp';
  type: 'host';
}

/** What we write for one leg (our side of it). */
export interface LocalMedia {
  kind: LegKind;
  address: string;
  port: number;
  /** separate RTCP port (rtp legs without rtcp-mux) */
  rtcpPort: number | null;
  rtcpMux: boolean;
  codecs: SdpCodec[];
  direction: Direction;
  ice: { ufrag: string; pwd: string; candidates: IceCandidate[] } | null;
  fingerprints: Fingerprint[];
  setup: 'actpass' | 'active' | 'passive' | null;
  mid: string | null;
  midExtId: number | null;
  ssrc: { ssrc: number; cname: string } | null;
  sessionId: string;
  version: number;
  /** the m-lines we do not bridge (video...), written with port 0 to keep the m-line count */
  others: { index: number; type: string; protocol: string; payloads: string; mid: string | null }[];
  audioIndex: number;
}

export function writeLocal(l: LocalMedia): string {
  const lines: string[] = ['v=0', `o=- ${l.sessionId} ${l.version} IN IP4 ${l.address}`, 's=-', 't=0 0'];
  if (l.kind === 'webrtc') {
    lines.push('a=ice-lite');
    const mids = [l.mid ?? '0'];
    lines.push(`a=group:BUNDLE ${mids.join(' ')}`, 'a=msid-semantic: WMS *');
  } else {
    lines.splice(3, 0, `c=IN IP4 ${l.address}`);
  }
  const count = Math.max(l.audioIndex + 1, ...l.others.map((o) => o.index + 1));
  for (let i = 0; i < count; i++) {
    if (i === l.audioIndex) {
      lines.push(...audioSection(l));
      continue;
    }
    const o = l.others.find((x) => x.index === i);
    if (!o) continue;
    // a stream we do not bridge: refused, as RFC 3264 §6 says, with port zero
    lines.push(`m=${o.type} 0 ${o.protocol} ${o.payloads || '0'}`);
    if (l.kind === 'webrtc') lines.push(`c=IN IP4 ${l.address}`);
    if (o.mid !== null) lines.push(`a=mid:${o.mid}`);
    lines.push('a=inactive');
  }
  return lines.join('\r\n') + '\r\n';
}

function audioSection(l: LocalMedia): string[] {
  const pts = l.codecs.map((c) => c.pt).join(' ');
  const out: string[] = [];
  if (l.kind === 'webrtc') {
    out.push(`m=audio ${l.port} UDP/TLS/RTP/SAVPF ${pts}`, `c=IN IP4 ${l.address}`, `a=rtcp:${l.port} IN IP4 ${l.address}`);
    if (l.ice) {
      out.push(`a=ice-ufrag:${l.ice.ufrag}`, `a=ice-pwd:${l.ice.pwd}`);
    }
    for (const f of l.fingerprints) out.push(`a=fingerprint:${f.algorithm} ${f.value}`);
    if (l.setup) out.push(`a=setup:${l.setup}`);
    out.push(`a=mid:${l.mid ?? '0'}`);
    if (l.midExtId !== null) out.push(`a=extmap:${l.midExtId} ${MID_EXT}`);
    out.push(`a=${l.direction}`);
    if (l.ssrc) out.push(`a=msid:gw gw-audio`);
    out.push('a=rtcp-mux', 'a=rtcp-rsize');
  } else {
    out.push(`m=audio ${l.port} RTP/AVP ${pts}`);
    if (l.rtcpMux) out.push('a=rtcp-mux');
    else if (l.rtcpPort !== null) out.push(`a=rtcp:${l.rtcpPort} IN IP4 ${l.address}`);
    out.push(`a=${l.direction}`);
  }
  for (const c of l.codecs) {
    out.push(`a=rtpmap:${c.pt} ${c.name}/${c.clockRate}${c.channels && c.channels > 1 ? `/${c.channels}` : ''}`);
    if (c.fmtp) out.push(`a=fmtp:${c.pt} ${c.fmtp}`);
    else if (c.name.toLowerCase() === 'telephone-event') out.push(`a=fmtp:${c.pt} 0-16`);
  }
  out.push('a=ptime:20');
  if (l.ssrc) out.push(`a=ssrc:${l.ssrc.ssrc} cname:${l.ssrc.cname}`);
  if (l.kind === 'webrtc' && l.ice) {
    for (const c of l.ice.candidates) {
      out.push(`a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.ip} ${c.port} typ ${c.type}`);
    }
    out.push('a=end-of-candidates');
  }
  return out;
}
