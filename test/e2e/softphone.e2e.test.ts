/**
 * The web softphone (dist/web, built by `npm run build:web`) in real Chromium against the real
 * gateway: two browsers (alice with a 440 Hz microphone, bob with 880 Hz) register and call
 * each other; a browser calls a desk phone (RtpPhone over UDP, 880 Hz); failures are shown in
 * words. Audio is checked as audio: the dominant frequency of what each side plays.
 *
 * Screenshots of the idle, ringing and in-call screens go to test-output/screenshots/; the
 * browsers' console (with JsSIP's debug log) to test-output/e2e-logs/. A failed audio check
 * prints the page's WebRTC report (states, candidate pair, RTP counters, both SDPs).
 *
 * Needs Chromium (CHROMIUM_PATH, else /usr/bin/chromium) and dist/web (npm run build:web);
 * skipped without dist/web. The whole file runs in about 45 s.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright';
import { encodeWav } from '../../server/audio/wav.js';
import { sine } from '../../server/audio/tone.js';
import type { Gateway } from '../../server/gateway.js';
import { projectRoot } from '../../server/paths.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { RtpPhone, type PhoneCall, type RtpPhoneOptions } from '../helpers/rtp-phone.js';
import { launchChromium, SoftphonePage } from './softphone-page.js';

const BUILT = fs.existsSync(path.join(projectRoot, 'dist', 'web', 'index.html'));

/** Mean square root of 16-bit samples. */
function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

/** `toneFile(dir, 440)`: 4 s of 440 Hz, mono 48 kHz 16-bit (a whole number of cycles, so the loop is seamless). */
function toneFile(dir: string, freq: number): string {
  const file = path.join(dir, `tone-${freq}.wav`);
  fs.writeFileSync(file, encodeWav(sine(freq, 48_000, 4000, 10_000), 48_000));
  return file;
}

describe('web softphone in Chromium', { skip: BUILT ? false : 'dist/web is not built (npm run build:web)', timeout: 90_000 }, () => {
  let gw: Gateway;
  let url: string;
  let tmp: string;
  let browser440: Browser;
  let browser880: Browser;
  const pages: SoftphonePage[] = [];
  const phones: RtpPhone[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'softphone-e2e-'));
    // one worker is plenty; a 200-port RTP window of its own, away from the default range's
    // start, so gateways of test files running in parallel do not hand out the same ports
    const minPort = 45_000 + 200 * Math.floor(Math.random() * 24);
    gw = await startTestGateway({ media: { workers: 1, minPort, maxPort: minPort + 199 } });
    url = `http://127.0.0.1:${gw.ports.http}/`;
    [browser440, browser880] = await Promise.all([launchChromium({ toneWav: toneFile(tmp, 440) }), launchChromium({ toneWav: toneFile(tmp, 880) })]);
  });

  after(async () => {
    for (const p of pages.splice(0)) await p.close();
    for (const ph of phones.splice(0)) await ph.close().catch(() => undefined);
    await Promise.all([browser440?.close(), browser880?.close()]);
    await gw?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function open(browser: Browser, name: string, viewport?: { width: number; height: number }): Promise<SoftphonePage> {
    const p = await SoftphonePage.open(browser, url, name, viewport);
    pages.push(p);
    return p;
  }

  async function closeAll(): Promise<void> {
    for (const p of pages.splice(0)) await p.close();
    for (const ph of phones.splice(0)) {
      if (ph.registered) await ph.unregister().catch(() => undefined);
      await ph.close();
    }
    // the gateway drops a WebSocket binding when its socket closes; wait so no test sees the last one's
    await waitFor('no registrations left', async () => (await gw.registrar.store.list()).length === 0, 5000);
  }

  async function deskPhone(user: string, opts: Partial<RtpPhoneOptions> = {}): Promise<RtpPhone> {
    const ph = await RtpPhone.start({ user, password: `pw-${user}`, gateway: `127.0.0.1:${gw.ports.udp}`, tone: 880, ...opts });
    phones.push(ph);
    await ph.register();
    return ph;
  }

  test('a wrong password says so; the right one registers', { timeout: 20_000 }, async () => {
    try {
      const alice = await open(browser440, 'wrong-password');
      assert.match(await alice.page.getByLabel('WebSocket server').inputValue(), /^ws:\/\/127\.0\.0\.1:\d+\/sip$/, 'the WebSocket URI is pre-filled from the page host');
      await alice.register('alice', 'not-her-password');
      await alice.waitForRegistration('Registration failed');
      assert.match(await alice.accountError(), /Wrong user name or password \(403/);
      await alice.screenshot('registration-failed.png');

      await alice.registerAndWait('alice', 'pw-alice');
      assert.equal(await alice.accountError(), '');
      const bindings = await gw.registrar.store.get('alice');
      assert.equal(bindings.length, 1);
      assert.equal(bindings[0]!.received.transport, 'ws');
    } finally {
      await closeAll();
    }
  });

  test('alice calls bob, browser to browser: each hears the other\'s tone; hold; hang up', { timeout: 40_000 }, async () => {
    try {
      const [alice, bob] = await Promise.all([open(browser440, 'alice'), open(browser880, 'bob')]);
      await Promise.all([alice.registerAndWait('alice', 'pw-alice', 'Alice Liddell'), bob.registerAndWait('bob', 'pw-bob', 'Bob')]);

      await alice.dial('bob');
      assert.equal(await bob.waitForIncoming(), 'Alice Liddell');
      await alice.waitForCallState('Ringing…');
      await bob.screenshot('ringing.png');

      await bob.answer();
      await Promise.all([alice.waitForCallState('In call'), bob.waitForCallState('In call')]);
      await Promise.all([alice.waitForTone(880), bob.waitForTone(440)]);
      await alice.page.waitForTimeout(1200); // a running timer and moving meters in the picture
      await alice.screenshot('in-call.png');
      assert.match(await alice.page.locator('#call-timer').innerText(), /^00:0\d$/);
      assert.ok(Number(await alice.page.locator('#mic-meter').getAttribute('aria-valuenow')) > 10, 'the microphone meter moves');
      assert.ok(Number(await alice.page.locator('#spk-meter').getAttribute('aria-valuenow')) > 10, 'the speaker meter moves');
      // the same call on a phone-sized screen
      await bob.page.setViewportSize({ width: 390, height: 844 });
      await bob.screenshot('in-call-narrow.png');

      // alice holds: she is told, bob is told, and bob's tone no longer reaches her
      await alice.toggleHold();
      await Promise.all([alice.waitForCallState('On hold'), bob.waitForCallState('On hold by the other side')]);
      assert.equal(await alice.isPressed(/^Resume call$/), true);
      await alice.waitForSilence();
      await alice.toggleHold();
      await Promise.all([alice.waitForCallState('In call'), bob.waitForCallState('In call')]);
      await Promise.all([alice.waitForTone(880), bob.waitForTone(440)]);

      await alice.hangUp();
      await alice.waitForCallMessage(/Call ended/);
      await bob.waitForCallMessage('The other side hung up.');
      await Promise.all([alice.waitForIdle(), bob.waitForIdle()]);
      assert.match((await alice.history())[0]!, /^bob Outgoing · just now · 00:\d\d/);
      assert.match((await bob.history())[0]!, /^Alice Liddell Incoming · just now · 00:\d\d/);
      await alice.screenshot('idle.png');
      await waitFor('the gateway to forget the call', () => gw.calls.size === 0, 3000);
    } finally {
      await closeAll();
    }
  });

  test('a browser calls a desk phone: audio both ways, mute, hold; hang-up from either side', { timeout: 40_000 }, async () => {
    try {
      const alice = await open(browser440, 'alice-to-desk-phone');
      await alice.registerAndWait('alice', 'pw-alice');
      const carol = await deskPhone('carol', { autoAnswer: { ringMs: 300 } });

      // 1st call: the browser hangs up
      await alice.dial('carol');
      const incoming: PhoneCall = await carol.nextIncoming();
      await alice.waitForCallState('In call');
      await incoming.answered;
      await alice.waitForTone(880);
      await waitFor('the desk phone to hear 440 Hz', () => incoming.heardTone(440), 5000);

      // mute: the phone gets silence; unmute: the tone again
      await alice.toggleMute();
      assert.equal(await alice.isPressed(/^Unmute microphone$/), true);
      await alice.waitForCallState('In call · muted');
      const mutedAt = Date.now() + 200;
      await alice.page.waitForTimeout(900);
      const mutedRms = rms(incoming.audio({ since: mutedAt }));
      assert.ok(mutedRms < 150, `the phone hears silence while muted (rms ${mutedRms.toFixed(0)})`);
      await alice.toggleMute();
      const unmutedAt = Date.now();
      await waitFor('the phone to hear 440 Hz after unmute', () => incoming.heardTone(440, { since: unmutedAt, skipMs: 100, minMs: 300 }), 4000);

      // hold: the phone is asked for recvonly and hears nothing; resume: both ways again
      await alice.toggleHold();
      await alice.waitForCallState('On hold');
      await waitFor('the phone to answer the hold re-INVITE', () => incoming.localDirection === 'recvonly', 4000);
      await alice.waitForSilence();
      await alice.toggleHold();
      await alice.waitForCallState('In call');
      await waitFor('the phone to be sendrecv again', () => incoming.localDirection === 'sendrecv', 4000);
      await alice.waitForTone(880);

      await alice.page.keyboard.press('Escape'); // the keyboard hangs up
      assert.deepEqual(await incoming.ended, { by: 'remote', reason: 'bye' });
      await alice.waitForCallMessage(/Call ended/);

      // 2nd call: the desk phone hangs up
      await alice.dial('carol');
      const second = await carol.nextIncoming();
      await second.answered;
      await alice.waitForCallState('In call');
      await second.hangup();
      await alice.waitForCallMessage('The other side hung up.');
      await alice.waitForIdle();
      await waitFor('the gateway to forget the calls', () => gw.calls.size === 0, 3000);
    } finally {
      await closeAll();
    }
  });

  test('DTMF keys during a call reach a desk phone as RFC 4733 events', { timeout: 20_000 }, async () => {
    try {
      const alice = await open(browser440, 'dtmf');
      await alice.registerAndWait('alice', 'pw-alice');
      const carol = await deskPhone('carol', { autoAnswer: { ringMs: 50 } });
      await alice.dial('carol');
      const incoming = await carol.nextIncoming();
      await incoming.answered;
      await alice.waitForCallState('In call');
      // from the keypad, then from the keyboard
      await alice.pressKeys('12');
      await alice.page.keyboard.press('#');
      assert.match(await alice.page.locator('#dtmf-sent').innerText(), /Keys sent: 12#/);
      const since = Date.now() - 2000;
      try {
        await waitFor('the phone to receive 3 digits', () => incoming.dtmfReceived.length >= 3, 4000);
      } catch (e) {
        const pts = new Map<number, number>();
        for (const p of incoming.receivedPackets) if (p.at >= since) pts.set(p.payloadType, (pts.get(p.payloadType) ?? 0) + 1);
        throw new Error(`${(e as Error).message}: got '${incoming.dtmfReceived}'; RTP payload types received meanwhile ${JSON.stringify([...pts])}; the phone's SDP:\n${incoming.localSdp}`);
      }
      assert.equal(incoming.dtmfReceived, '12#');
      await alice.hangUp();
      await incoming.ended;
    } finally {
      await closeAll();
    }
  });

  test('failed calls say why: not found, busy, no common codec, declined', { timeout: 30_000 }, async () => {
    try {
      const alice = await open(browser440, 'failures');
      await alice.registerAndWait('alice', 'pw-alice');

      await alice.dial('nobody');
      assert.match(await alice.waitForCallMessage(/404|480/), /Nobody with that number|unavailable/);

      const busy = await deskPhone('carol', { autoAnswer: { ringMs: 50, status: 486 } });
      await alice.dial('carol');
      assert.equal(await alice.waitForCallMessage(/Busy/), 'Busy (486 Busy Here).');
      busy.autoAnswer = { ringMs: 50, status: 488 };
      await alice.waitForIdle();
      await alice.dial('carol');
      assert.match(await alice.waitForCallMessage(/488/), /No common audio codec/);

      const bob = await open(browser880, 'bob-declines');
      await bob.registerAndWait('bob', 'pw-bob');
      await alice.waitForIdle();
      await alice.dial('bob');
      await bob.waitForIncoming();
      await bob.decline();
      assert.match(await alice.waitForCallMessage(/declined/), /603/);
      assert.match((await bob.history())[0]!, /Incoming/);
    } finally {
      await closeAll();
    }
  });

  test('the WebSocket drops: the page says so, reconnects and registers again', { timeout: 30_000 }, async () => {
    try {
      const alice = await open(browser440, 'reconnect');
      await alice.registerAndWait('alice', 'pw-alice');
      // the gateway drops the connection (as a restart or a network cut would)
      const [binding] = await gw.registrar.store.get('alice');
      const flow = binding?.received.flowId ? gw.transports.flow(binding.received.flowId) : undefined;
      assert.ok(flow, 'alice is registered over a WebSocket flow');
      flow.close();
      await alice.waitForRegistration(/Connection lost|Reconnecting/);
      // JsSIP retries after 2-4 s (connection_recovery_min_interval 2 s)
      await alice.waitForRegistration('Registered as alice', 15_000);
      assert.match(await alice.notice(), /lost and restored: registered again/);
      const again = await gw.registrar.store.get('alice');
      assert.equal(again.length, 1);
      assert.notEqual(again[0]!.received.flowId, binding!.received.flowId, 'registered on the new connection');
    } finally {
      await closeAll();
    }
  });
});
