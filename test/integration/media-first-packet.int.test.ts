/**
 * A desk phone answering a browser (issue 12): its first RTP packet, the marked one that starts
 * its talkspurt (RFC 3551 §4.1), is the first one the browser decrypts; and when the phone
 * changes its SSRC mid-call the browser gets the new stream back within 5 packets (100 ms at
 * 20 ms pacing). Real gateway, real mediasoup worker, a werift peer under JsSIP over
 * SIP-over-WebSocket (ICE, DTLS-SRTP), a desk phone over SIP/UDP with plain RTP.
 *
 * mediasoup rewrites SSRC, sequence number and timestamp on the way to the browser, not the
 * payload: the phone stamps each packet's number into its payload (RtpPhone stampPayloads),
 * which tells the browser which of the phone's packets it got.
 *
 * Only our patched worker (scripts/mediasoup/worker-patches.mjs) relays a phone's first packets
 * (no SSRC to learn first, RTP kept until the browser's DTLS is up): with the prebuilt worker
 * both tests are skipped, saying so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import type { WorkerFeatures } from '../../server/media/worker-features.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { JsSipUa } from '../helpers/jssip-ua.js';
import { payloadStamp, RtpPhone, sleep } from '../helpers/rtp-phone.js';
import { weriftPeerFactory, type ReceivedRtpPacket } from '../helpers/werift-peer.js';

const DOMAIN = '127.0.0.1';
const ALICE_HZ = 440;
const CAROL_HZ = 880;

/** RTP ports of this file's own, below the ephemeral range (as in webrtc-media.int.test.ts). */
function mediaPorts(): { listenAddress: string; minPort: number; maxPort: number } {
  const minPort = 20_000 + 2 * Math.floor(Math.random() * 6000);
  return { listenAddress: '127.0.0.1', minPort, maxPort: minPort + 99 };
}

/** The phone's packet numbers in the order the browser got them (non-PCMU packets left out). */
function stamps(packets: readonly ReceivedRtpPacket[]): number[] {
  return packets.filter((p) => p.payloadType === 0).map((p) => payloadStamp(p.payloadHead) ?? -1);
}

/** How many stamps arrived after a higher one (reordered on the way), for diagnostics. */
function outOfOrder(s: readonly number[]): number {
  let n = 0;
  let max = -Infinity;
  for (const x of s) {
    if (x < max) n++;
    max = Math.max(max, x);
  }
  return n;
}

describe('a desk phone answers a browser: its first packet, and a new SSRC, reach the browser', { timeout: 30_000 }, () => {
  let gw: Gateway;
  let alice: JsSipUa;
  let carol: RtpPhone;
  const alicePcs = weriftPeerFactory({ toneHz: ALICE_HZ, label: 'alice', codecs: ['PCMU'], timeoutMs: 5000 });

  before(async () => {
    gw = await startTestGateway({ media: mediaPorts() });
    // answers at once (no ringing) and sends from its answer on, first packet marked
    carol = await RtpPhone.start({ user: 'carol', password: 'pw-carol', gateway: `127.0.0.1:${gw.ports.udp}`, tone: CAROL_HZ, autoAnswer: {}, stampPayloads: true, timeoutMs: 5000 });
    await carol.register();
    alice = await JsSipUa.start({ wsUrl: `ws://127.0.0.1:${gw.ports.http}/sip`, user: 'alice', password: 'pw-alice', domain: DOMAIN, register: true, peerConnectionFactory: alicePcs, timeoutMs: 5000 });
  });

  after(async () => {
    await Promise.allSettled([alice?.stop({ timeoutMs: 2000 })]);
    await alicePcs.closeAll(2000);
    if (carol?.registered) await carol.unregister().catch(() => undefined);
    await carol?.close();
    await gw?.close();
  });

  /** Why a test of the patched worker's behaviour cannot run here (null: it can). */
  function needsPatchedWorker(...features: (keyof Omit<WorkerFeatures, 'error'>)[]): string | null {
    const f = gw.media?.pool.features;
    const missing = features.filter((k) => !f?.[k]);
    return missing.length ? `the mediasoup worker lacks ${missing.join(', ')} (a prebuilt worker, without scripts/mediasoup/worker-patches.mjs)` : null;
  }

  /** The browser calls the phone, which answers and talks at once; back when the browser has 25 of its packets. */
  async function callCarol() {
    const call = alice.call(`sip:carol@${DOMAIN}`);
    await call.confirmed;
    const a = alicePcs.last();
    const incoming = await carol.nextIncoming();
    await a.waitConnected();
    await waitFor('25 packets from the phone at the browser', () => a.rtpPackets.length >= 25, 5000);
    return { call, a, incoming };
  }

  it("the first packet the browser decrypts is the phone's first (marked, packet 1)", async (t) => {
    const why = needsPatchedWorker('catchAllSsrc', 'earlyReplay');
    if (why) return t.skip(why);
    const { call, a, incoming } = await callCarol();
    const got = stamps(a.rtpPackets);
    const first = a.rtpPackets[0]!;
    const missing = [...Array(Math.max(...got)).keys()].map((i) => i + 1).filter((n) => !got.includes(n));
    t.diagnostic(`phone sent ${incoming.sentPackets}; browser got ${a.rtpPackets.length}, first stamps ${got.slice(0, 12).join(',')}; ${outOfOrder(got)} out of order; missing: ${missing.join(',') || 'none'}; arrival of the first 6, ms after the first: ${a.rtpPackets.slice(0, 6).map((p) => p.at - first.at).join(',')} (sent 20 ms apart: closer here means held until DTLS was up, then replayed)`);
    assert.equal(first.payloadType, 0, `the first packet is PCMU; ${a.describe()}`);
    assert.equal(payloadStamp(first.payloadHead), 1, `the first packet the browser decrypted is the phone's packet ${payloadStamp(first.payloadHead)}, not its first (stamps: ${got.slice(0, 12).join(',')})`);
    assert.equal(first.marker, true, 'the first packet keeps the marker bit that starts the talkspurt');
    assert.equal(a.rtpPackets.filter((p) => p.marker).length, 1, 'one talkspurt: only the first packet is marked');
    await call.hangup();
    await waitFor('no transports left', async () => (await gw.media!.pool.dump()).every((w) => w.transports === 0), 3000);
  });

  it('the phone changes its SSRC: at most 5 of the packets it sent after the change are lost (20 ms pacing)', async (t) => {
    const why = needsPatchedWorker('catchAllSsrc', 'earlyReplay');
    if (why) return t.skip(why);
    const { call, a, incoming } = await callCarol();
    await waitFor('the phone to hear the browser', () => incoming.heardTone(ALICE_HZ), 3000);
    const oldSsrcs = new Set(a.rtpPackets.map((p) => p.ssrc));
    const sentBefore = incoming.sentPackets;
    const receivedBefore = a.rtpPackets.length;
    const oldPhoneSsrc = incoming.sentSsrc;
    assert.notEqual(incoming.changeSsrc(), oldPhoneSsrc);
    await sleep(1000);
    incoming.stopSending();
    const sentAfter = incoming.sentPackets - sentBefore;
    await sleep(300);
    // the phone's packets sent after the change carry the numbers sentBefore+1 .. sentBefore+sentAfter
    const after = a.rtpPackets.slice(receivedBefore);
    const newStream = after.filter((p) => p.payloadType === 0 && (payloadStamp(p.payloadHead) ?? 0) > sentBefore);
    const got = new Set(newStream.map((p) => payloadStamp(p.payloadHead)));
    const lost = [...Array(sentAfter).keys()].map((i) => sentBefore + 1 + i).filter((n) => !got.has(n));
    const newSsrcs = [...new Set(newStream.map((p) => p.ssrc))];
    t.diagnostic(
      `sent ${sentAfter} after the change, the browser got ${got.size} of them on SSRC ${newSsrcs.map((x) => x.toString(16)).join(',')} ` +
        `(before: ${[...oldSsrcs].map((x) => x.toString(16)).join(',')}); lost: ${lost.map((n) => n - sentBefore).join(',') || 'none'}; ` +
        `${outOfOrder(stamps(after))} out of order; first new packet marked: ${newStream[0]?.marker}`,
    );
    assert.ok(sentAfter >= 40, `the phone sent only ${sentAfter} packets in the second after the change`);
    assert.ok(got.size > 0, `the browser got none of the phone's packets after its SSRC change; ${a.describe()}`);
    assert.ok(lost.length <= 5, `${lost.length} of the ${sentAfter} packets sent after the SSRC change were lost (packets ${lost.map((n) => n - sentBefore).join(',')} after it)`);
    await call.hangup();
    await waitFor('no transports left', async () => (await gw.media!.pool.dump()).every((w) => w.transports === 0), 3000);
  });
});
