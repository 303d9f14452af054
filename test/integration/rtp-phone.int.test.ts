/**
 * Two desk phones (RtpPhone: SIP over UDP + real RTP) register with the gateway and call each
 * other through it; audio is checked as audio (a tone sent on one side, detected on the other).
 *
 * Nothing here assumes where RTP comes from: each phone sends to what the SDP it received
 * names and listens on its own port. Today the gateway passes SDP through (RTP goes phone to
 * phone); with the media bridge the same assertions must hold with RTP through the gateway.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { RtpPhone, SipStatusError, type RtpPhoneOptions } from '../helpers/rtp-phone.js';

describe('desk phones (RtpPhone) through the gateway', () => {
  let gw: Gateway;
  let gateway: string;
  let phones: RtpPhone[] = [];

  before(async () => {
    gw = await startTestGateway();
    gateway = `127.0.0.1:${gw.ports.udp}`;
  });

  after(() => gw.close());

  /** A registered phone, unregistered and closed when the test ends (see `hangUpAll`). */
  async function phone(user: string, opts: Partial<RtpPhoneOptions> = {}): Promise<RtpPhone> {
    const p = await RtpPhone.start({ user, password: `pw-${user}`, gateway, ...opts });
    phones.push(p);
    await p.register();
    return p;
  }

  /**
   * Unregisters and closes every phone of the test, so the next test's phones are the only
   * contacts (a dead contact left registered would get a branch of every later call).
   */
  async function hangUpAll(): Promise<void> {
    const list = phones;
    phones = [];
    for (const p of list) {
      if (p.registered) await p.unregister().catch(() => undefined);
      await p.close();
    }
  }

  test('registers (digest) and unregisters', async () => {
    try {
      const alice = await phone('alice');
      const bindings = await gw.registrar.store.get('alice');
      assert.deepEqual(bindings.map((b) => b.contact), [`sip:alice@127.0.0.1:${alice.sipPort}`]);
      await alice.unregister();
      assert.deepEqual(await gw.registrar.store.get('alice'), []);
      const wrong = await RtpPhone.start({ user: 'carol', password: 'wrong', gateway });
      phones.push(wrong);
      await assert.rejects(wrong.register(), (e: unknown) => e instanceof SipStatusError && e.status === 403);
    } finally {
      await hangUpAll();
    }
  });

  test('alice calls bob: tones both ways, DTMF, SSRC change, hold and resume, BYE', async (t) => {
    // one call; each step a subtest, so a failing step is reported and the next ones still run
    try {
      const alice = await phone('alice', { tone: 440 });
      const bob = await phone('bob', { tone: 880, autoAnswer: { ringMs: 50 } });

      const call = alice.call('bob');
      assert.equal(await call.ringing, 180);
      await call.answered;
      const incoming = await bob.nextIncoming();
      await incoming.answered; // bob got the ACK
      assert.equal(call.codec, 'PCMU');
      assert.equal(incoming.codec, 'PCMU');

      await t.test('audio both ways, checked as audio', async () => {
        await waitFor('bob to hear 440 Hz', () => incoming.heardTone(440), 3000);
        await waitFor('alice to hear 880 Hz', () => call.heardTone(880), 3000);
        assert.ok(!incoming.heardTone(880), 'bob hears his own tone');
        assert.ok(!call.heardTone(440), 'alice hears her own tone');
      });

      await t.test('RFC 4733 DTMF from alice reaches bob', async () => {
        await call.sendDtmf('123#');
        await waitFor('bob to receive 4 digits', () => incoming.dtmfReceived.length >= 4, 2000);
        assert.equal(incoming.dtmfReceived, '123#');
      });

      await t.test('a new SSRC (and sequence/timestamp base) mid-call: audio keeps flowing', async () => {
        const oldSsrc = call.sentSsrc;
        const changedAt = Date.now();
        assert.notEqual(call.changeSsrc(), oldSsrc);
        const since = changedAt + 40; // past anything of the old stream still in flight
        await waitFor('bob to hear 440 Hz after the SSRC change', () => incoming.heardTone(440, { since, skipMs: 100, minMs: 300 }), 3000);
        assert.ok(incoming.receivedPackets.filter((p) => p.at >= since).length >= 15);
      });

      await t.test('hold (sendonly) and resume (sendrecv) by re-INVITE', async () => {
        // alice offers sendonly and keeps sending; bob answers recvonly and goes quiet
        await call.hold();
        assert.equal(call.localDirection, 'sendonly');
        assert.equal(call.remoteDirection, 'recvonly');
        assert.equal(incoming.localDirection, 'recvonly');
        const heldAt = Date.now();
        const bobSentAtHold = incoming.sentPackets;
        await waitFor('bob to hear alice while on hold', () => incoming.heardTone(440, { since: heldAt, skipMs: 60, minMs: 300 }), 3000);
        assert.equal(incoming.sentPackets, bobSentAtHold, 'bob sends nothing while recvonly');

        await call.resume();
        assert.equal(call.localDirection, 'sendrecv');
        assert.equal(incoming.localDirection, 'sendrecv');
        const resumedAt = Date.now();
        await waitFor('alice to hear bob again after resume', () => call.heardTone(880, { since: resumedAt, skipMs: 60, minMs: 300 }), 3000);
      });

      const end = await call.hangup();
      assert.deepEqual(end, { by: 'local', reason: 'bye', status: 200 });
      assert.deepEqual(await incoming.ended, { by: 'remote', reason: 'bye' });
      await waitFor('the gateway to forget the call', () => gw.calls.size === 0, 2000);
    } finally {
      await hangUpAll();
    }
  });

  test('bob answers 488: the call rejects with 488 and ends on both sides', async () => {
    try {
      const alice = await phone('alice');
      const bob = await phone('bob', { autoAnswer: { ringMs: 20, status: 488 } });
      const call = alice.call('bob');
      await assert.rejects(call.answered, (e: unknown) => e instanceof SipStatusError && e.status === 488);
      assert.deepEqual(await call.ended, { by: 'remote', reason: 'rejected', status: 488 });
      const incoming = await bob.nextIncoming();
      assert.deepEqual(await incoming.ended, { by: 'local', reason: 'rejected', status: 488 });
    } finally {
      await hangUpAll();
    }
  });

  test('no codec in common: 488 Not Acceptable Here', async () => {
    try {
      const alice = await phone('alice', { codecs: ['PCMU'] });
      await phone('bob', { codecs: ['G722'], autoAnswer: {} });
      const call = alice.call('bob');
      await assert.rejects(call.answered, (e: unknown) => e instanceof SipStatusError && e.status === 488);
      assert.deepEqual(await call.ended, { by: 'remote', reason: 'rejected', status: 488 });
    } finally {
      await hangUpAll();
    }
  });

  test('alice cancels while bob rings: both see the call end', async () => {
    try {
      const alice = await phone('alice');
      const bob = await phone('bob', { autoAnswer: { ringMs: 60_000 } });
      const call = alice.call('bob');
      assert.equal(await call.ringing, 180);
      const incoming = await bob.nextIncoming();
      const end = await call.hangup();
      assert.deepEqual(end, { by: 'local', reason: 'cancel', status: 487 });
      assert.deepEqual(await incoming.ended, { by: 'remote', reason: 'cancel', status: 487 });
      await assert.rejects(call.answered, (e: unknown) => e instanceof SipStatusError && e.status === 487);
    } finally {
      await hangUpAll();
    }
  });

  test('late offer (INVITE without SDP), G.722, rtcp-mux; the callee holds', async () => {
    try {
      const alice = await phone('alice', { tone: 440, codecs: ['G722', 'PCMU'], rtcpMux: true });
      const bob = await phone('bob', { tone: 880, codecs: ['PCMA', 'G722'], rtcpMux: true, autoAnswer: {} });
      const call = alice.call('bob', { lateOffer: true });
      await call.answered;
      const incoming = await bob.nextIncoming();
      await incoming.answered; // the ACK carried alice's answer
      assert.equal(call.codec, 'G722');
      assert.equal(incoming.codec, 'G722');
      await waitFor('bob to hear 440 Hz', () => incoming.heardTone(440), 3000);
      await waitFor('alice to hear 880 Hz', () => call.heardTone(880), 3000);
      assert.equal(call.receivedRate, 16000);
      assert.match(call.localSdp ?? '', /^a=rtcp-mux\r$/m);

      // hold from the callee's side: alice answers recvonly and stops sending
      await incoming.hold();
      assert.equal(call.localDirection, 'recvonly');
      await incoming.resume();
      assert.equal(call.localDirection, 'sendrecv');

      await call.hangup();
      assert.equal((await incoming.ended).reason, 'bye');
    } finally {
      await hangUpAll();
    }
  });

  test('early media: a 183 with SDP starts audio before the answer', async () => {
    try {
      const alice = await phone('alice', { tone: 440 });
      const bob = await phone('bob', { tone: 880, autoAnswer: { ringMs: 1000, earlyMedia: true } });
      const call = alice.call('bob');
      assert.equal(await call.ringing, 183);
      await waitFor('alice to hear 880 Hz before the answer', () => call.heardTone(880), 900);
      assert.equal(call.state, 'early');
      await call.answered;
      const incoming = await bob.nextIncoming();
      await waitFor('bob to hear 440 Hz', () => incoming.heardTone(440), 3000);
      await incoming.hangup(); // the callee hangs up this time
      assert.deepEqual(await call.ended, { by: 'remote', reason: 'bye' });
    } finally {
      await hangUpAll();
    }
  });
});
