/**
 * A real desk-phone program (Debian's baresip 1.0, test/helpers/baresip.ts) through the
 * gateway over SIP/UDP, media anchored in mediasoup, audio checked as audio: every party
 * sends its own tone and the far side's recording (baresip's sndfile `-dec.wav`, or what the
 * werift peer decoded) must hold it.
 * - two baresip phones call each other, with the gateway as their outbound proxy (what a
 *   phone configured with an "outbound proxy" does: the initial INVITE carries a pre-loaded
 *   `Route: <sip:gateway;lr>`), and without one (the Request-URI names the gateway's port);
 * - a browser (JsSIP over WebSocket + a werift peer, test/helpers/werift-peer.ts) calls a
 *   baresip phone, and a baresip phone calls the browser: DTLS-SRTP/ICE on one leg, plain
 *   RTP/AVP on the other, PCMU on both (baresip offers and accepts only PCMU).
 * After each call: hung up by BYE, and no mediasoup transport left.
 * Debug with BARESIP_TRACE=1 (baresip -v -s: its log with a SIP trace on stderr),
 * BARESIP_KEEP=1 (keep each phone's temp dir: config, accounts, recordings), JSSIP_UA_TRACE=1,
 * TEST_LOG=debug (gateway).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { BaresipPhone, DEFAULT_RTP_PORTS, type BaresipOptions } from '../helpers/baresip.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { JsSipUa, type JsSipCall } from '../helpers/jssip-ua.js';
import { peerOf, weriftPeerFactory, type WeriftPeerFactory } from '../helpers/werift-peer.js';

const DOMAIN = '127.0.0.1';
const CALLER_HZ = 440;
const CALLEE_HZ = 880;
/** how long each call carries audio before the hangup */
const TALK_MS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('baresip desk phones through the gateway', { timeout: 60_000 }, () => {
  let gw: Gateway;
  let wsUrl: string;
  let phones: BaresipPhone[] = [];
  let uas: JsSipUa[] = [];
  let pcFactories: WeriftPeerFactory[] = [];
  // a rejection nobody handles inside the gateway would crash a production gateway (nothing
  // in server/ handles 'unhandledRejection'): the test it happened in fails, by name
  let rejections: unknown[] = [];
  const onRejection = (e: unknown): void => {
    rejections.push(e);
  };

  before(async () => {
    // RTP: a random window below the kernel's ephemeral range and above baresip's ports
    // (21000-21199), not the default 40000+ that gateways of concurrently running test files
    // take. SIP timers short: a branch stuck on a failure must not keep this process alive
    // after gw.close() for Timer B's 32 s or Timer C's 180 s.
    const minPort = DEFAULT_RTP_PORTS[1] + 801 + 2 * Math.floor(Math.random() * 4000);
    gw = await startTestGateway({
      sip: { timers: { transactionTimeout: 6000, inviteTimeout: 15_000 } },
      media: { workers: 1, listenAddress: '127.0.0.1', minPort, maxPort: minPort + 199 },
    });
    wsUrl = `ws://127.0.0.1:${gw.ports.http}/sip`;
    process.on('unhandledRejection', onRejection);
  });

  // every phone and UA of a test is stopped (and un-REGISTERed) when it ends
  afterEach(async () => {
    await Promise.allSettled(phones.map((p) => p.close()));
    await Promise.allSettled(uas.map((ua) => ua.stop({ timeoutMs: 2000 })));
    await Promise.allSettled(pcFactories.map((f) => f.closeAll(2000)));
    phones = [];
    uas = [];
    pcFactories = [];
    const seen = rejections;
    rejections = [];
    assert.deepEqual(seen.map(String), [], 'unhandled promise rejections during the test (gateway)');
  });

  after(async () => {
    await gw?.close();
    process.off('unhandledRejection', onRejection);
  });

  async function phone(opts: Omit<BaresipOptions, 'gateway'>): Promise<BaresipPhone> {
    const p = await BaresipPhone.start({ gateway: gw, lifetimeS: 45, timeoutMs: 6000, ...opts });
    phones.push(p);
    return p;
  }

  async function browser(user: string, toneHz: number): Promise<{ ua: JsSipUa; pcs: WeriftPeerFactory }> {
    const pcs = weriftPeerFactory({ toneHz, label: user, timeoutMs: 5000 });
    pcFactories.push(pcs);
    const ua = await JsSipUa.start({ wsUrl, user, password: `pw-${user}`, domain: DOMAIN, register: true, peerConnectionFactory: pcs, timeoutMs: 6000 });
    uas.push(ua);
    return { ua, pcs };
  }

  async function mediaTransports(): Promise<number> {
    return (await gw.media!.pool.dump()).reduce((n, w) => n + w.transports, 0);
  }

  /** What the gateway's media legs counted, for assertion messages (take it before the hangup). */
  async function mediaStats(): Promise<string> {
    const out = [];
    for (const c of gw.calls.list()) out.push(await gw.media!.stats(c.id).catch((e: unknown) => String(e)));
    return `gateway media: ${JSON.stringify(out)}`;
  }

  async function assertMediaFreed(): Promise<void> {
    await waitFor('every call over', () => gw.calls.size === 0, 5000).catch(() => undefined);
    await waitFor('no mediasoup transport left', async () => (await mediaTransports()) === 0, 5000).catch(() => undefined);
    assert.equal(gw.calls.size, 0, 'calls left in the registry');
    assert.equal(await mediaTransports(), 0, 'mediasoup transports left');
  }

  async function phoneToPhone(outbound: boolean): Promise<void> {
    const [alice, bob] = await Promise.all([
      phone({ user: 'alice', toneHz: CALLER_HZ, outbound }),
      phone({ user: 'bob', toneHz: CALLEE_HZ, autoAnswer: true, outbound }),
    ]);
    const bobSince = bob.events.length;
    try {
      await alice.dial(`sip:bob@${alice.domain}`);
    } catch (e) {
      const bobGotIt = bob.events.slice(bobSince).some((ev) => ev.type === 'CALL_INCOMING');
      assert.fail(`${(e as Error).message}; bob ${bobGotIt ? 'was offered the call' : 'never got the INVITE'}`);
    }
    await bob.waitEvent('CALL_ESTABLISHED', { since: bobSince });
    // anchored in mediasoup: a PlainTransport per leg (each built on the phone's first RTP packet)
    await waitFor('a mediasoup transport per leg', async () => (await mediaTransports()) >= 2, 3000);
    await sleep(TALK_MS);
    const stats = await mediaStats();
    await alice.hangup();
    await bob.waitEvent('CALL_CLOSED', { since: bobSince });

    assert.ok(bob.heardTone(CALLER_HZ), `bob should hear ${CALLER_HZ} Hz: ${bob.describeRecording()}; ${stats}`);
    assert.ok(alice.heardTone(CALLEE_HZ), `alice should hear ${CALLEE_HZ} Hz: ${alice.describeRecording()}; ${stats}`);
    assert.ok(!bob.heardTone(CALLEE_HZ), `bob hears his own tone: ${bob.describeRecording()}`);
    assert.ok(!alice.heardTone(CALLER_HZ), `alice hears her own tone: ${alice.describeRecording()}`);
    await assertMediaFreed();
  }

  // the initial INVITE carries `Route: <sip:127.0.0.1:GWPORT;transport=udp;lr>` (the outbound
  // proxy, RFC 3261 §8.1.2): the gateway must take it off and look bob up (OpenSIPS'
  // loose_route() is false for a pre-loaded Route naming only the proxy itself)
  test('alice calls bob, both with the gateway as outbound proxy (pre-loaded Route): two-way audio, hangup, no media left', async () => {
    await phoneToPhone(true);
  });

  test('alice calls bob addressed by Request-URI (no outbound proxy): two-way audio, hangup, no media left', async () => {
    await phoneToPhone(false);
  });

  // with a browser: the phones keep the default account (the gateway as outbound proxy)

  test('a browser (JsSIP + werift over WebSocket) calls baresip: both hear the other, hangup, no media left', async () => {
    const desk = await phone({ user: 'uas', toneHz: CALLEE_HZ, autoAnswer: true });
    const { ua } = await browser('carol', CALLER_HZ);
    const since = desk.events.length;
    const call = ua.call(`sip:uas@${DOMAIN}`);
    await call.confirmed;
    await desk.waitEvent('CALL_ESTABLISHED', { since });
    const peer = peerOf(call);
    await peer.waitConnected();
    assert.equal(peer.sendCodec?.toLowerCase(), 'pcmu', `the browser is answered with the phone's codec; ${peer.describe()}`);
    await peer.waitForAudio(TALK_MS * 0.75, { timeoutMs: TALK_MS + 3000 }).catch(() => undefined);
    await sleep(Math.max(0, TALK_MS - 1000));
    const stats = await mediaStats();
    const end = await call.hangup();
    assert.equal(end.byeStatus, 200);
    await desk.waitEvent('CALL_CLOSED', { since });

    assert.ok(peer.heardTone(CALLEE_HZ), `the browser should hear ${CALLEE_HZ} Hz; ${peer.describe()}; ${stats}`);
    assert.ok(desk.heardTone(CALLER_HZ), `baresip should hear ${CALLER_HZ} Hz: ${desk.describeRecording()}; ${peer.describe()}; ${stats}`);
    await assertMediaFreed();
  });

  test('baresip calls a browser (JsSIP + werift over WebSocket): both hear the other, hangup, no media left', async () => {
    const { ua } = await browser('carol', CALLEE_HZ);
    const answered = new Promise<JsSipCall>((resolve, reject) => {
      ua.onIncoming(async (c) => {
        try {
          await c.answer();
          resolve(c);
        } catch (e) {
          reject(e);
        }
      });
    });
    answered.catch(() => undefined);
    const desk = await phone({ user: 'uac', toneHz: CALLER_HZ });
    await desk.dial(`sip:carol@${desk.domain}`);
    const incoming = await answered;
    const peer = peerOf(incoming);
    await peer.waitConnected();
    assert.equal(peer.sendCodec?.toLowerCase(), 'pcmu', `the browser answers with the phone's codec; ${peer.describe()}`);
    await peer.waitForAudio(TALK_MS * 0.75, { timeoutMs: TALK_MS + 3000 }).catch(() => undefined);
    await sleep(Math.max(0, TALK_MS - 1000));
    const stats = await mediaStats();
    await desk.hangup();
    const end = await incoming.ended;
    assert.equal(end.cause, 'Terminated');

    assert.ok(peer.heardTone(CALLER_HZ), `the browser should hear ${CALLER_HZ} Hz; ${peer.describe()}; ${stats}`);
    assert.ok(desk.heardTone(CALLEE_HZ), `baresip should hear ${CALLEE_HZ} Hz: ${desk.describeRecording()}; ${peer.describe()}; ${stats}`);
    await assertMediaFreed();
  });
});
