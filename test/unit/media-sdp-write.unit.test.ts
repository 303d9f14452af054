/**
 * What the bridge writes for each leg kind, for every pairing of the real SDPs in
 * test/fixtures/sdp, checked for what the receiver would refuse: a browser's "Bad Media
 * Description" or failed ICE/DTLS (webrtc legs: ICE-lite, BUNDLE, rtcp-mux, fingerprint, the
 * offer's m-line layout), a phone's 488 or one-way audio (rtp legs: plain RTP/AVP, no ICE,
 * no DTLS, RTCP on port + 1, only what it offered). The exact text is in the golden tests.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import sdpTransform from 'sdp-transform';

import { parseRemote, routableCodecs, type Direction, type LegKind } from '../../server/media/sdp.js';
import { ANNOUNCED, bridgeAnswer, bridgeOffer, derive, fixture, runValues } from '../helpers/sdp-legs.js';

const BROWSER_OFFERS = ['chromium-156-audio-offer.sdp', 'firefox-121-audio-video-offer.sdp', 'firefox-152-audio-video-offer.sdp', 'safari-26.5.2-audio-video-offer.sdp'];
const PHONE_OFFERS = ['cisco-cp79xx-fw8-audio-offer.sdp', 'grandstream-unknown-audio-offer.sdp', 'microsip-3.19.8-audio-offer.sdp', 'polycom-soundpoint-audio-offer.sdp', 'polycom-vvx410-audio-offer.sdp'];
const ANSWERS = ['baresip-1.0.0-audio-answer.sdp', 'baresip-1.0.0-audio-answer-hold.sdp', 'linphonec-5.1.65-audio-answer.sdp', 'chromium-156-audio-answer.sdp'];

type Session = sdpTransform.SessionDescription;
type Media = sdpTransform.MediaDescription;

const audioOf = (s: Session): Media => {
  const live = s.media.filter((m) => m.type === 'audio' && m.port !== 0);
  assert.equal(live.length, 1, 'one audio stream');
  return live[0]!;
};
const pts = (m: Media): number[] => String(m.payloads ?? '').split(' ').filter(Boolean).map(Number);
const rtpmap = (m: Media, pt: number): string | undefined => {
  const r = m.rtp.find((x) => x.payload === pt);
  return r ? `${r.codec.toLowerCase()}/${r.rate}` : undefined;
};
/** a codec as its party means it: rtpmap, else the RFC 3551 static name */
const codecOf = (m: Media, pt: number): string | undefined => rtpmap(m, pt) ?? ({ 0: 'pcmu/8000', 8: 'pcma/8000', 9: 'g722/8000' } as Record<number, string>)[pt];

/** RFC 3264 §6.1: what an answer may say to each offered direction. */
const ALLOWED: Record<Direction, Direction[]> = {
  sendrecv: ['sendrecv', 'sendonly', 'recvonly', 'inactive'],
  sendonly: ['recvonly', 'inactive'],
  recvonly: ['sendonly', 'inactive'],
  inactive: ['inactive'],
};
const directionOf = (m: Media, s: Session): Direction => (m.direction ?? (s as { direction?: Direction }).direction ?? 'sendrecv') as Direction;

/** What every SDP we write must have, whatever the leg. */
function common(text: string, s: Session, port: number): void {
  assert.ok(/^v=0\r\no=- \d+ \d+ IN IP4 \S+\r\ns=-\r\n/.test(text), 'v=, o=, s= first');
  assert.ok(!/[^\r]\n/.test(text) && text.endsWith('\r\n'), 'CRLF line ends');
  assert.ok(!text.includes('0.0.0.0'), 'never 0.0.0.0: we always say where we listen');
  const a = audioOf(s);
  assert.equal(a.port, port);
  assert.equal(a.connection?.ip ?? s.connection?.ip, ANNOUNCED);
  for (const pt of pts(a)) assert.ok(rtpmap(a, pt), `rtpmap for payload type ${pt}`);
  for (const r of a.rtp.filter((x) => x.codec.toLowerCase() === 'telephone-event')) {
    assert.ok(a.fmtp.some((f) => f.payload === r.payload), 'telephone-event names its events');
  }
  const media = a.rtp.filter((x) => x.codec.toLowerCase() !== 'telephone-event');
  assert.ok(media.length >= 1, 'at least one audio codec');
}

/** A browser leg: libwebrtc/Firefox refuse the description or fail ICE/DTLS without these. */
function browserLeg(text: string, port: number): { s: Session; a: Media } {
  const s = sdpTransform.parse(text);
  common(text, s, port);
  const a = audioOf(s);
  assert.equal(a.protocol, 'UDP/TLS/RTP/SAVPF');
  assert.ok(text.includes('\r\na=ice-lite\r\n'), 'ICE-lite: we do not check, the browser does');
  assert.ok(a.iceUfrag && a.iceUfrag.length >= 4 && a.icePwd && a.icePwd.length >= 22, 'ICE credentials (RFC 8839 §5.4 lengths)');
  assert.equal(a.fingerprint?.type, 'sha-256');
  assert.ok(a.rtcpMux !== undefined, 'rtcp-mux (browsers require it)');
  const bundle = s.groups?.find((g) => g.type === 'BUNDLE');
  for (const m of s.media) {
    assert.ok(m.mid !== undefined, `a=mid on the ${m.type} m-line`);
    if (m.port !== 0) assert.ok(String(bundle?.mids ?? '').split(' ').includes(String(m.mid)), `mid ${m.mid} in the BUNDLE group`);
  }
  const cands = a.candidates ?? [];
  assert.ok(cands.length >= 1, 'a candidate');
  for (const c of cands) {
    assert.deepEqual([c.transport.toLowerCase(), c.ip, c.port, c.type], ['udp', ANNOUNCED, port, 'host'], 'the candidate is where we listen');
  }
  assert.ok(a.endOfCandidates !== undefined, 'end-of-candidates: nothing trickles from an ICE-lite server');
  for (const e of a.ext ?? []) assert.equal(e.uri, 'urn:ietf:params:rtp-hdrext:sdes:mid', 'only the MID extension');
  return { s, a };
}

/** A phone leg: plain RTP/AVP, nothing a SIP phone would choke on. */
function phoneLeg(text: string, port: number, mux = false): { s: Session; a: Media } {
  const s = sdpTransform.parse(text);
  common(text, s, port);
  const a = audioOf(s);
  assert.equal(a.protocol, 'RTP/AVP');
  assert.ok(!/^a=(ice-|candidate|end-of-candidates|fingerprint|setup|extmap|crypto|group|rtcp-rsize|msid)/m.test(text), 'no ICE, DTLS, SDES, BUNDLE or header extensions');
  if (mux) assert.ok(a.rtcpMux !== undefined);
  else assert.deepEqual([a.rtcp?.port, a.rtcpMux], [port + 1, undefined], 'RTCP on the next port (RFC 3605)');
  return { s, a };
}

/** An answer against its offer: the layout, codecs and extensions the offer allows. */
function matchesOffer(answer: { s: Session; a: Media }, offerText: string, kind: LegKind): void {
  const offer = sdpTransform.parse(offerText);
  const parsed = parseRemote(offerText);
  assert.deepEqual(answer.s.media.map((m) => m.type), offer.media.map((m) => m.type), 'one m-line per offered m-line, in order (RFC 3264 §6)');
  answer.s.media.forEach((m, i) => {
    const o = offer.media[i]!;
    assert.equal(m.protocol, o.protocol, `m-line ${i}: the offer's transport`);
    if (kind === 'webrtc') assert.equal(String(m.mid), String(o.mid), `m-line ${i}: the offer's mid`);
    if (i !== parsed.mediaIndex) assert.equal(m.port, 0, `m-line ${i} (${m.type}) refused`);
  });
  const oa = offer.media[parsed.mediaIndex]!;
  for (const pt of pts(answer.a)) {
    assert.ok(pts(oa).includes(pt), `payload type ${pt} was offered`);
    assert.equal(codecOf(answer.a, pt), codecOf(oa, pt), `payload type ${pt} means what the offer said`);
  }
  const codecsIn = answer.a.rtp.filter((r) => r.codec.toLowerCase() !== 'telephone-event');
  assert.equal(codecsIn.length, 1, 'one codec: the bridge does not transcode');
  assert.ok(ALLOWED[directionOf(oa, offer)].includes(directionOf(answer.a, answer.s)), 'a direction the offer allows');
  for (const e of answer.a.ext ?? []) {
    assert.ok((oa.ext ?? []).some((x) => x.value === e.value && x.uri === e.uri), `extmap ${e.value} as offered (RFC 8285 §6)`);
  }
  if (kind === 'webrtc') {
    const offered = oa.setup ?? (offer as { setup?: string }).setup;
    assert.equal(answer.a.setup, offered === 'passive' ? 'active' : 'passive', 'a DTLS role that complements the offer (RFC 5763 §5)');
  }
}

describe('what the bridge writes to a browser', () => {
  for (const offer of PHONE_OFFERS) {
    it(`offers ${offer.split('-audio')[0]}'s call to a browser`, () => {
      const v = runValues();
      const { a } = browserLeg(bridgeOffer(fixture(offer), 'webrtc', v), v.port);
      assert.equal(a.setup, 'actpass', 'the browser picks its DTLS role');
      assert.deepEqual((a.ext ?? []).map((e) => [e.value, e.uri]), [[1, 'urn:ietf:params:rtp-hdrext:sdes:mid']], 'MID as mediasoup\'s id');
    });
  }
  for (const offer of BROWSER_OFFERS) {
    for (const answer of ANSWERS) {
      it(`answers ${offer.split('-audio')[0]} after ${answer.replace('-audio-answer', '').replace('.sdp', '')} answered`, () => {
        const v = runValues();
        const text = bridgeAnswer(fixture(offer), fixture(answer), v);
        const written = browserLeg(text, v.port);
        matchesOffer(written, fixture(offer), 'webrtc');
        // MID only with mediasoup's id (1): these browsers used 3 or 4
        assert.equal(written.a.ext, undefined, 'no MID extension under another id');
      });
    }
  }
});

describe('what the bridge writes to a phone', () => {
  for (const offer of [...BROWSER_OFFERS, ...PHONE_OFFERS]) {
    it(`offers ${offer.split('-audio')[0]}'s call to a phone`, () => {
      const v = runValues();
      const { a } = phoneLeg(bridgeOffer(fixture(offer), 'rtp', v), v.port);
      assert.deepEqual(pts(a), routableCodecs(parseRemote(fixture(offer)).codecs).map((c) => c.pt), 'the offer\'s routable codecs, its order and numbers');
    });
  }
  for (const offer of PHONE_OFFERS) {
    for (const answer of ANSWERS) {
      it(`answers ${offer.split('-audio')[0]} after ${answer.replace('-audio-answer', '').replace('.sdp', '')} answered`, () => {
        const v = runValues();
        const written = phoneLeg(bridgeAnswer(fixture(offer), fixture(answer), v), v.port);
        matchesOffer(written, fixture(offer), 'rtp');
      });
    }
  }

  it('answers a phone that muxes RTCP with rtcp-mux and no a=rtcp', () => {
    const muxed = derive('microsip-3.19.8-audio-offer.sdp', [[/a=rtcp:4001 IN IP4 10\.2\.19\.102\r\n/, 'a=rtcp-mux\r\n']]);
    const v = runValues();
    const written = phoneLeg(bridgeAnswer(muxed, fixture('chromium-156-audio-answer.sdp'), v), v.port, true);
    assert.equal(written.a.rtcp, undefined);
  });
});

describe('hold through the bridge', () => {
  it('a browser\'s hold (sendonly) reaches the phone, and the phone\'s recvonly comes back', () => {
    const hold = derive('chromium-156-audio-offer.sdp', [[/a=sendrecv/, 'a=sendonly']]);
    const v = runValues();
    const toPhone = phoneLeg(bridgeOffer(hold, 'rtp', v), v.port);
    assert.equal(toPhone.a.direction, 'sendonly');
    const back = browserLeg(bridgeAnswer(hold, fixture('baresip-1.0.0-audio-answer-hold.sdp'), v), v.port);
    assert.equal(back.a.direction, 'recvonly');
    matchesOffer(back, hold, 'webrtc');
  });

  it('a phone\'s RFC 2543 hold (c=0.0.0.0) reaches the browser as inactive, with our address', () => {
    const hold = derive('cisco-cp79xx-fw8-audio-offer.sdp', [[/c=IN IP4 10\.10\.10\.10/, 'c=IN IP4 0.0.0.0']]);
    const v = runValues();
    const { a } = browserLeg(bridgeOffer(hold, 'webrtc', v), v.port);
    assert.equal(a.direction, 'inactive');
  });
});
