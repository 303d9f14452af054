/**
 * Real WebRTC media through the gateway, with werift peers (test/helpers/werift-peer.ts) under
 * JsSIP UAs over SIP-over-WebSocket. Audio is checked as audio (a tone sent, its frequency
 * found on the far side).
 * - the helper itself, two peers back to back (no gateway): tones, unsignaled SSRCs, DTMF;
 * - browser to browser: DTLS-SRTP on both legs, each ended in the gateway (one
 *   WebRtcTransport per leg); alice sends 440 Hz, bob 880 Hz; RFC 4733 DTMF; hold and
 *   resume through JsSIP re-INVITEs; hang-up leaves no transport in the mediasoup worker;
 * - browser to desk phone (RtpPhone over UDP): PCMU both ways, and the phone changing its
 *   SSRC (the browser must take the gateway's new, unsignaled consumer SSRC).
 * Debug with JSSIP_UA_TRACE=1 (SIP messages), TEST_LOG=debug (gateway logs) and
 * WEBRTC_MEDIA_DUMP=1 (the SDPs each browser applied).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import JsSIP from 'jssip';
import sdpTransform from 'sdp-transform';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { fakeAudioTrack, JsSipUa, type JsSipCall } from '../helpers/jssip-ua.js';
import { RtpPhone } from '../helpers/rtp-phone.js';
import { holdCall, resumeCall, WeriftPeer, weriftPeerFactory, type WeriftAudioCodec } from '../helpers/werift-peer.js';

const DOMAIN = '127.0.0.1';
const ALICE_HZ = 440;
const BOB_HZ = 880;

/**
 * RTP ports: a window of this file's own, below the kernel's ephemeral range (werift's
 * sockets), away from the default 40000+ that gateways of concurrently running test files
 * take (before 425143a the gateway did not skip a busy port, and the call failed with 500).
 */
function mediaPorts(): { listenAddress: string; minPort: number; maxPort: number } {
  const minPort = 20_000 + 2 * Math.floor(Math.random() * 6000);
  return { listenAddress: '127.0.0.1', minPort, maxPort: minPort + 99 };
}

/** The audio m-line of an SDP, parsed. */
function audioOf(sdp: string): sdpTransform.MediaDescription {
  const m = sdpTransform.parse(sdp).media.find((x) => x.type === 'audio');
  assert.ok(m, `no audio m-line in\n${sdp}`);
  return m;
}

/** An SDP without its a=ssrc lines: the far end's SSRC is then unsignaled (as the gateway's consumer may be). */
function withoutSsrc(sdp: string): string {
  return sdp.replace(/^a=ssrc(-group)?:.*\r?\n/gm, '');
}

describe('the werift peer helper, back to back (no gateway)', { timeout: 15_000 }, () => {
  for (const codec of ['opus', 'PCMU'] as WeriftAudioCodec[]) {
    it(`${codec}: tones both ways with unsignaled SSRCs, and DTMF`, async () => {
      const x = new WeriftPeer({}, { toneHz: 440, label: 'x', codecs: [codec], timeoutMs: 5000 });
      const y = new WeriftPeer({}, { toneHz: 880, label: 'y', timeoutMs: 5000 });
      try {
        x.addTrack(fakeAudioTrack());
        y.addTrack(fakeAudioTrack());
        await x.setLocalDescription(await x.createOffer());
        await y.setRemoteDescription({ type: 'offer', sdp: withoutSsrc(x.localDescription!.sdp) });
        await y.setLocalDescription(await y.createAnswer());
        await x.setRemoteDescription({ type: 'answer', sdp: withoutSsrc(y.localDescription!.sdp) });
        await Promise.all([x.waitConnected(), y.waitConnected()]);
        assert.equal(x.sendCodec, codec.toLowerCase());
        await Promise.all([x.waitForAudio(800), y.waitForAudio(800)]);
        assert.ok(y.heardTone(440), y.describe());
        assert.ok(x.heardTone(880), x.describe());
        assert.equal(y.sampleRate, codec === 'opus' ? 48000 : 8000);
        assert.deepEqual(y.ssrcsSeen, [x.ssrc], 'the one stream, by its unsignaled SSRC');
        await x.sendDtmf('1#');
        await y.waitForDtmf('1#', 2000);
        assert.equal(y.dtmfReceived, '1#');
        assert.ok([...y.stats.payloadTypes.keys()].some((pt) => pt === (codec === 'opus' ? 110 : 126)), y.describe());
      } finally {
        x.close();
        y.close();
        await Promise.all([x.closed, y.closed]);
      }
    });
  }
});

describe('WebRTC media, browser to browser (werift peers through the gateway)', { timeout: 30_000 }, () => {
  let gw: Gateway;
  let alice: JsSipUa;
  let bob: JsSipUa;
  const alicePcs = weriftPeerFactory({ toneHz: ALICE_HZ, label: 'alice', timeoutMs: 5000 });
  const bobPcs = weriftPeerFactory({ toneHz: BOB_HZ, label: 'bob', timeoutMs: 5000 });
  let call: JsSipCall;
  let incoming: JsSipCall;
  let a: WeriftPeer;
  let b: WeriftPeer;

  before(async () => {
    gw = await startTestGateway({ media: mediaPorts() });
    const wsUrl = `ws://127.0.0.1:${gw.ports.http}/sip`;
    alice = await JsSipUa.start({ wsUrl, user: 'alice', password: 'pw-alice', domain: DOMAIN, register: true, peerConnectionFactory: alicePcs, timeoutMs: 5000 });
    bob = await JsSipUa.start({ wsUrl, user: 'bob', password: 'pw-bob', domain: DOMAIN, register: true, peerConnectionFactory: bobPcs, timeoutMs: 5000 });
  });

  after(async () => {
    await Promise.allSettled([alice?.stop({ timeoutMs: 2000 }), bob?.stop({ timeoutMs: 2000 })]);
    await Promise.allSettled([alicePcs.closeAll(2000), bobPcs.closeAll(2000)]);
    await gw?.close();
  });

  it('alice calls bob, bob answers: ICE and DTLS-SRTP come up on both legs', async () => {
    const answered = new Promise<JsSipCall>((resolve, reject) => {
      bob.onIncoming(async (c) => {
        try {
          await c.answer();
          resolve(c);
        } catch (e) {
          reject(e);
        }
      });
    });
    call = alice.call(`sip:bob@${DOMAIN}`);
    await call.confirmed;
    incoming = await answered;
    a = alicePcs.last();
    b = bobPcs.last();
    await Promise.all([a.waitConnected(), b.waitConnected()]);
    if (process.env.WEBRTC_MEDIA_DUMP) {
      for (const [who, p] of [['alice', a], ['bob', b]] as const) {
        process.stderr.write(`--- ${who} local SDP\n${p.localSdps.at(-1)}\n--- ${who} remote SDP\n${p.remoteSdps.at(-1)}\n`);
      }
    }

    // what each browser got from the gateway is what a browser needs
    const answer = audioOf(a.remoteSdps.at(-1)!);
    const offer = audioOf(b.remoteSdps.at(-1)!);
    for (const [what, m, setup] of [
      ['answer to alice', answer, /^(passive|active)$/],
      ['offer to bob', offer, /^actpass$/],
    ] as const) {
      assert.equal(m.protocol, 'UDP/TLS/RTP/SAVPF', what);
      assert.ok(m.rtcpMux !== undefined, `${what}: a=rtcp-mux`);
      assert.match(String(m.setup), setup, `${what}: a=setup`);
      assert.ok(m.fingerprint, `${what}: a=fingerprint`);
      assert.ok((m.candidates ?? []).some((c) => c.ip === '127.0.0.1' && c.transport.toLowerCase() === 'udp'), `${what}: a 127.0.0.1 UDP candidate`);
      assert.ok((m.ext ?? []).some((e) => e.uri === 'urn:ietf:params:rtp-hdrext:sdes:mid'), `${what}: the sdes:mid extension`);
    }
    assert.equal(answer.setup, 'passive', 'the gateway answers a=setup:passive (the browser is the DTLS client)');
    assert.equal(a.dtlsRole, 'client');
    assert.equal(a.dtlsState, 'connected');
    assert.equal(b.dtlsState, 'connected');
  });

  it('two-way audio: bob hears 440 Hz from alice, alice hears 880 Hz from bob', async () => {
    await Promise.all([a.waitForAudio(1200), b.waitForAudio(1200)]);
    assert.ok(b.heardTone(ALICE_HZ), `bob should hear ${ALICE_HZ} Hz; ${b.describe()}`);
    assert.ok(a.heardTone(BOB_HZ), `alice should hear ${BOB_HZ} Hz; ${a.describe()}`);
    assert.ok(!b.heardTone(BOB_HZ), `bob hears his own tone; ${b.describe()}`);
    assert.ok(!a.heardTone(ALICE_HZ), `alice hears her own tone; ${a.describe()}`);
    // bob's offer named no a=ssrc (the consumer did not exist yet): taken by MID / as the only stream
    assert.equal(a.stats.foreignMidPackets + b.stats.foreignMidPackets, 0);
    assert.equal(a.stats.unknownPtPackets + b.stats.unknownPtPackets, 0, `${a.describe()}\n${b.describe()}`);
    assert.equal(a.stats.decodeErrors + b.stats.decodeErrors, 0);
  });

  it("alice sends DTMF '5*' as RFC 4733 events, and '#' through JsSIP's RFC2833 sendDTMF", async () => {
    const before = a.stats.dtmfPacketsSent;
    await a.sendDtmf('5*');
    // 100 ms digits in 20 ms packets: 4 updates + 3 end packets each
    assert.equal(a.stats.dtmfPacketsSent - before, 14, a.describe());
    call.session.sendDTMF('#', { transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833, duration: 100, interToneGap: 70 });
    await waitFor("JsSIP's '#' sent", () => a.dtmfSent.endsWith('#'), 2000);
    assert.equal(a.dtmfSent, '5*#');
  });

  // mediasoup forwards media codecs only (before 425143a its consumers dropped every
  // telephone-event packet), and a consumer sends with its router's payload types (before
  // fc4debe bob got the events as PT 101 where both legs had negotiated 126): both regress here
  it('the digits arrive at bob, on the payload type bob negotiated', async () => {
    await b.waitForDtmf('5*#', 2000);
    assert.equal(b.dtmfReceived, '5*#');
    assert.equal(b.stats.unknownPtPackets, 0, b.describe());
  });

  it('hold then resume (JsSIP re-INVITEs) keeps two-way audio', async () => {
    const ssrcBefore = a.ssrc;
    const heldAt = Date.now();
    await holdCall(call);
    const holdOffer = call.localSdp ?? '';
    assert.equal(audioOf(holdOffer).direction, 'sendonly', 'JsSIP offers a=sendonly on hold');
    assert.match(String(a.currentDirection), /^(sendonly|inactive)$/, a.describe());
    // held: bob's side was offered sendonly (or inactive) by the gateway
    await waitFor('bob to see the hold', () => b.remoteSdps.length >= 2, 3000);
    assert.match(String(audioOf(b.remoteSdps.at(-1)!).direction), /^(sendonly|inactive)$/, 'the gateway relays the hold to bob');
    assert.ok(Date.now() - heldAt < 5000);
    // on hold (a=sendonly) alice's packets keep flowing, but silent: JsSIP disables the local
    // track of a held call (RTCSession._setLocalMediaStatus), as a browser would send silence
    const onHold = Date.now() + 60;
    await b.waitForAudio(400, { since: onHold });
    assert.ok(b.rms({ since: onHold }) < 50, `bob gets silence from the held alice; ${b.describe()}`);

    await resumeCall(call);
    assert.equal(a.currentDirection, 'sendrecv', a.describe());
    await waitFor('bob to see the resume', () => b.currentDirection === 'sendrecv', 3000);
    const resumedAt = Date.now();
    await Promise.all([a.waitForAudio(800, { since: resumedAt }), b.waitForAudio(800, { since: resumedAt })]);
    assert.ok(b.heardTone(ALICE_HZ, { since: resumedAt }), `bob hears alice after the resume; ${b.describe()}`);
    assert.ok(a.heardTone(BOB_HZ, { since: resumedAt }), `alice hears bob after the resume; ${a.describe()}`);
    assert.equal(a.ssrc, ssrcBefore, 'the browser keeps its SSRC across re-INVITEs');
  });

  it('alice hangs up: both calls end and no mediasoup transport is left', async () => {
    const end = await call.hangup();
    assert.equal(end.byeStatus, 200);
    const bobEnd = await incoming.ended;
    assert.equal(bobEnd.cause, 'Terminated');
    await Promise.all([a.closed, b.closed]);
    const dump = await waitFor(
      'no transports left',
      async () => {
        const d = await gw.media!.pool.dump();
        return d.every((w) => w.transports === 0) ? d : null;
      },
      3000,
    );
    assert.ok(dump.length > 0);
  });

  // consumers send their router's payload types: before fc4debe they were fixed (opus 111),
  // and a browser numbering opus 109 as Firefox does heard nothing (every packet an unknown PT)
  it('a browser with Firefox payload types (opus 109, telephone-event 101) hears bob, and bob its DTMF', async () => {
    const firefoxPcs = weriftPeerFactory({ toneHz: ALICE_HZ, label: 'alice (firefox pts)', timeoutMs: 3000, payloadTypes: { opus: 109, telephoneEvent8k: 101 } });
    const ffCall = alice.call(`sip:bob@${DOMAIN}`, { peerConnectionFactory: firefoxPcs });
    try {
      await ffCall.confirmed;
      const f = firefoxPcs.last();
      await f.waitConnected();
      await f.waitForAudio(600, { timeoutMs: 2000 });
      assert.ok(f.heardTone(BOB_HZ), f.describe());
      assert.equal(f.stats.unknownPtPackets, 0, f.describe());
      const bobPeer = bobPcs.last();
      const before = bobPeer.dtmfReceived;
      await f.sendDtmf('9');
      await bobPeer.waitForDtmf('9', 2000);
      assert.equal(bobPeer.dtmfReceived, `${before}9`);
    } finally {
      await ffCall.hangup({ timeoutMs: 2000 }).catch(() => undefined);
      await firefoxPcs.closeAll(2000);
    }
  });
});

describe('WebRTC browser to desk phone (WS -> UDP), and the phone changing its SSRC', { timeout: 20_000 }, () => {
  let gw: Gateway;
  let alice: JsSipUa;
  let carol: RtpPhone;
  const alicePcs = weriftPeerFactory({ toneHz: ALICE_HZ, label: 'alice', timeoutMs: 5000 });

  before(async () => {
    gw = await startTestGateway({ media: mediaPorts() });
    carol = await RtpPhone.start({ user: 'carol', password: 'pw-carol', gateway: `127.0.0.1:${gw.ports.udp}`, tone: BOB_HZ, autoAnswer: { ringMs: 50 }, timeoutMs: 5000 });
    await carol.register();
    alice = await JsSipUa.start({ wsUrl: `ws://127.0.0.1:${gw.ports.http}/sip`, user: 'alice', password: 'pw-alice', domain: DOMAIN, register: true, peerConnectionFactory: alicePcs, timeoutMs: 5000 });
  });

  after(async () => {
    await Promise.allSettled([alice?.stop({ timeoutMs: 2000 })]);
    await alicePcs.closeAll(2000);
    await carol?.close();
    await gw?.close();
  });

  it('PCMU both ways; a new phone SSRC reaches the browser as a new, unsignaled SSRC', async (t) => {
    const call = alice.call(`sip:carol@${DOMAIN}`);
    await call.confirmed;
    const a = alicePcs.last();
    const incoming = await carol.nextIncoming();
    await a.waitConnected();
    // the phone speaks G.711 only: the browser must be answered with it (no transcoding)
    assert.equal(a.sendCodec, 'pcmu', a.describe());
    await a.waitForAudio(800);
    assert.equal(a.sampleRate, 8000);
    assert.ok(a.heardTone(BOB_HZ), `alice hears the phone; ${a.describe()}`);
    await waitFor('carol to hear alice', () => incoming.heardTone(ALICE_HZ), 3000);

    const first = a.ssrcsSeen;
    assert.equal(first.length, 1, a.describe());
    const changedAt = Date.now();
    incoming.changeSsrc();
    await waitFor('a second SSRC at alice', () => a.ssrcsSeen.length >= 2, 5000);
    const newAt = Date.now();
    t.diagnostic(`SSRC change: the browser got the new SSRC ${newAt - changedAt} ms later`);
    await a.waitForAudio(500, { since: newAt });
    assert.ok(a.heardTone(BOB_HZ, { since: newAt }), `alice hears the phone after its SSRC change; ${a.describe()}`);
    // how long the browser heard nothing (the gateway re-learns in its periodic check)
    assert.ok(newAt - changedAt < 5000);
    await call.hangup();
    await waitFor('no transports left', async () => (await gw.media!.pool.dump()).every((w) => w.transports === 0), 3000);
  });
});

describe('desk phone to browser (UDP -> WS): the gateway offers DTLS-SRTP with ICE to the browser', { timeout: 20_000 }, () => {
  let gw: Gateway;
  let bob: JsSipUa;
  let carol: RtpPhone;
  const bobPcs = weriftPeerFactory({ toneHz: BOB_HZ, label: 'bob', timeoutMs: 5000 });

  before(async () => {
    gw = await startTestGateway({ media: mediaPorts() });
    bob = await JsSipUa.start({ wsUrl: `ws://127.0.0.1:${gw.ports.http}/sip`, user: 'bob', password: 'pw-bob', domain: DOMAIN, register: true, peerConnectionFactory: bobPcs, timeoutMs: 5000 });
    carol = await RtpPhone.start({ user: 'carol', password: 'pw-carol', gateway: `127.0.0.1:${gw.ports.udp}`, tone: ALICE_HZ, timeoutMs: 5000 });
    await carol.register();
  });

  after(async () => {
    await Promise.allSettled([bob?.stop({ timeoutMs: 2000 })]);
    await bobPcs.closeAll(2000);
    await carol?.close();
    await gw?.close();
  });

  it('the phone calls the browser: both hear the other; the phone hangs up and nothing is left', async () => {
    bob.onIncoming(async (c) => {
      await c.answer();
    });
    const call = carol.call('bob');
    await call.answered;
    const b = bobPcs.last();
    await b.waitConnected();
    // the browser was offered SAVPF with ICE (flags UDP/TLS/RTP/SAVPF ICE=force)
    const offer = b.remoteSdps[0] ?? '';
    assert.match(offer, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m);
    assert.match(offer, /^a=ice-lite/m);
    await b.waitForAudio(800);
    assert.ok(b.heardTone(ALICE_HZ), `the browser hears the phone; ${b.describe()}`);
    await waitFor('the phone to hear the browser', () => call.heardTone(BOB_HZ), 3000);
    await call.hangup();
    await waitFor('no transports left', async () => (await gw.media!.pool.dump()).every((w) => w.transports === 0), 3000);
  });
});
