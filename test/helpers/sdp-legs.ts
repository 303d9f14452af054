/**
 * The pure half of the bridge's offer/answer, for unit tests without the mediasoup worker:
 * what MediaSession.offer/answer/describe feed to writeLocal, with the leg transports'
 * local() shapes (WebRtcLeg: ICE-lite, one host candidate, sha-256; PlainLeg: RTCP on
 * port + 1 unless the phone muxes). Mirrors server/media/media-session.ts and the legs: when
 * those change what they pass to writeLocal, change this too.
 */
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { isDtmf, negotiate, type SdpCodec } from '../../server/media/codecs.js';
import { projectRoot } from '../../server/paths.js';
import { MID_EXT_ID, parseRemote, routableCodecs, SdpError, writeLocal, type LegKind, type LocalMedia, type RemoteMedia } from '../../server/media/sdp.js';

export const SDP_FIXTURES = path.join(projectRoot, 'test', 'fixtures', 'sdp');

/** A fixture's text as sent on the wire. */
export function fixture(name: string): string {
  return fs.readFileSync(path.join(SDP_FIXTURES, name), 'latin1');
}

/** A variant of a fixture; every edit must apply, so a changed fixture fails loudly. */
export function derive(name: string, edits: [RegExp, string][]): string {
  let text = fixture(name);
  for (const [re, by] of edits) {
    if (!re.test(text)) throw new Error(`${name}: ${re} no longer matches`);
    text = text.replace(re, by);
  }
  return text;
}

export function fixtureNames(): string[] {
  return fs.readdirSync(SDP_FIXTURES).filter((f) => f.endsWith('.sdp')).sort();
}

/** The announced address the tests' gateway writes (fixed, like the config's). */
export const ANNOUNCED = '203.0.113.10';

/** What changes from run to run in what we write: a fresh set per call, like the real legs. */
export interface RunValues {
  port: number;
  sessionId: string;
  ufrag: string;
  pwd: string;
  fingerprint: string;
  foundation: string;
  priority: number;
}

export function runValues(): RunValues {
  return {
    port: 2 * randomInt(10000, 30000),
    sessionId: String(randomInt(1, 2 ** 40)),
    ufrag: randomBytes(12).toString('base64url').slice(0, 16),
    pwd: randomBytes(24).toString('base64url').slice(0, 32),
    fingerprint: [...randomBytes(32)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':'),
    foundation: 'udpcandidate',
    priority: 1076302079,
  };
}

/** Our side of a leg: LocalTransport as WebRtcLeg/PlainLeg.local() build it. */
function transport(kind: LegKind, v: RunValues, remote: RemoteMedia | null): Pick<LocalMedia, 'kind' | 'address' | 'port' | 'rtcpPort' | 'rtcpMux' | 'ice' | 'fingerprints'> {
  if (kind === 'webrtc') {
    return {
      kind,
      address: ANNOUNCED,
      port: v.port,
      rtcpPort: null,
      rtcpMux: true,
      ice: { ufrag: v.ufrag, pwd: v.pwd, candidates: [{ foundation: v.foundation, priority: v.priority, ip: ANNOUNCED, port: v.port, protocol: 'udp', type: 'host' }] },
      fingerprints: [{ algorithm: 'sha-256', value: v.fingerprint }],
    };
  }
  const mux = remote?.rtcpMux ?? false;
  return { kind, address: ANNOUNCED, port: v.port, rtcpPort: mux ? null : v.port + 1, rtcpMux: mux, ice: null, fingerprints: [] };
}

function local(kind: LegKind, v: RunValues, remote: RemoteMedia | null, fields: Omit<LocalMedia, 'kind' | 'address' | 'port' | 'rtcpPort' | 'rtcpMux' | 'ice' | 'fingerprints' | 'sessionId' | 'version' | 'ssrc'>): string {
  return writeLocal({ ...transport(kind, v, remote), ...fields, ssrc: null, sessionId: v.sessionId, version: 1 });
}

/**
 * The offer the bridge sends to the other party (of kind `to`) for an offer it received:
 * the offer's routable codecs, audio alone. Throws SdpError (488) when none can be carried.
 */
export function bridgeOffer(offerSdp: string, to: LegKind, v: RunValues = runValues()): string {
  const remote = parseRemote(offerSdp);
  const codecs = routableCodecs(remote.codecs);
  if (!codecs.some((c) => !isDtmf(c))) throw new SdpError(`no codec we can carry (offered: ${remote.codecs.map((c) => c.name).join(', ') || 'none'})`);
  return local(to, v, null, {
    codecs,
    direction: remote.direction,
    // WebRtcLeg.setupFor(true); a fresh leg has mid 0 and is offered MID as mediasoup's id
    setup: to === 'webrtc' ? 'actpass' : null,
    mid: to === 'webrtc' ? '0' : null,
    midExtId: to === 'webrtc' ? MID_EXT_ID : null,
    audioIndex: 0,
    others: [],
  });
}

/**
 * The answer the bridge sends back to an offerer once the other party answered: the
 * negotiated codec (and telephone-event) with the offerer's payload types, the answerer's
 * direction, the offer's m-line layout. Throws SdpError (488) when nothing is shared.
 */
export function bridgeAnswer(offerSdp: string, answerSdp: string, v: RunValues = runValues()): string {
  const offer = parseRemote(offerSdp);
  const answer = parseRemote(answerSdp);
  const neg = negotiate(routableCodecs(offer.codecs), answer.codecs);
  if (!neg) throw new SdpError('no common codec');
  const webrtc = offer.kind === 'webrtc';
  return local(offer.kind, v, offer, {
    codecs: [neg.offerer.media, ...(neg.offerer.dtmf ? [neg.offerer.dtmf] : [])],
    direction: answer.direction,
    // WebRtcLeg.setupFor(false) and setRemote(): its mid, MID only with mediasoup's id
    setup: webrtc ? (offer.setup === 'passive' ? 'active' : 'passive') : null,
    mid: webrtc ? (offer.mid ?? '0') : null,
    midExtId: webrtc && offer.midExtId === MID_EXT_ID ? MID_EXT_ID : null,
    audioIndex: offer.mediaIndex,
    others: offer.mlines.map((m, index) => ({ index, ...m })).filter((m) => m.index !== offer.mediaIndex),
  });
}

/**
 * How a browser answers an offer (libwebrtc, Firefox): the offered codecs it also has, in
 * the offer's order and with the offer's payload types. `caps` is what the browser offers
 * when it calls.
 */
export function answerCodecs(offered: SdpCodec[], caps: SdpCodec[]): SdpCodec[] {
  return offered.filter((o) => caps.some((c) => c.name.toLowerCase() === o.name.toLowerCase() && c.clockRate === o.clockRate));
}
