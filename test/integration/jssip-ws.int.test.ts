/**
 * Two real JsSIP user agents over SIP-over-WebSocket (RFC 7118) against the gateway started
 * in-process: registration, a wrong password, a call alice -> bob with answer, ACK and BYE,
 * a 486 and a CANCEL, a binding removed when its WebSocket closes (also while it rings),
 * un-REGISTER on stop.
 * Debug with JSSIP_UA_TRACE=1 (every SIP message each UA sends and receives, on stderr).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { buildConfig } from '../../server/config/load.js';
import { startGateway, type Gateway } from '../../server/gateway.js';
import type { Binding } from '../../server/registrar/binding.js';
import { FixedSdpPeerConnection, JsSipUa, RegistrationError, within, type JsSipCall } from '../helpers/jssip-ua.js';

const DOMAIN = '127.0.0.1';

async function waitUntil<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('JsSIP over WebSocket', { timeout: 60_000 }, () => {
  let gw: Gateway;
  let wsUrl: string;
  const uas: JsSipUa[] = [];
  let alice: JsSipUa | undefined;
  let bob: JsSipUa | undefined;

  const bindingsOf = async (aor: string): Promise<Binding[]> => (await gw.registrar.store.list()).filter((b) => b.aor === aor);

  const startUa = async (user: string, password: string, register: boolean): Promise<JsSipUa> => {
    const ua = await JsSipUa.start({ wsUrl, user, password, domain: DOMAIN, register });
    uas.push(ua);
    return ua;
  };

  before(async () => {
    const config = buildConfig({
      // Timer C short (no call here rings for long): a branch stuck by the drop-while-ringing
      // bug below would otherwise keep its 180 s Timer C alive after gw.close() (the Proxy has
      // no close(); gateway bug) and the test process would not exit for 3 minutes
      sip: { advertise: DOMAIN, udp: { address: '127.0.0.1', port: 0 }, timers: { inviteTimeout: 4000 } },
      http: { address: '127.0.0.1', port: 0 },
      registrar: { store: { type: 'memory' } },
      users: [
        { username: 'alice', password: 'pw-alice' },
        { username: 'bob', password: 'pw-bob' },
      ],
      log: { level: 'silent', pretty: false },
    });
    gw = await startGateway(config, pino({ level: 'silent' }));
    wsUrl = `ws://127.0.0.1:${gw.ports.http}/sip`;
  });

  after(async () => {
    await Promise.allSettled(uas.map((ua) => ua.stop({ timeoutMs: 3000 })));
    await gw?.close();
  });

  it('a wrong password fails registration with 403 (or 401) and leaves no binding', async () => {
    const mallory = await startUa('alice', 'not-her-password', false);
    await assert.rejects(mallory.register(), (e: unknown) => {
      assert.ok(e instanceof RegistrationError, `expected a RegistrationError, got ${String(e)}`);
      assert.ok(e.status === 403 || e.status === 401, `status ${e.status} (cause ${e.cause})`);
      assert.ok(e.cause === 'Rejected' || e.cause === 'Authentication Error', `cause ${e.cause}`);
      return true;
    });
    assert.equal(mallory.isRegistered(), false);
    // the REGISTER was challenged, and the retry with credentials was refused
    const registerResponses = mallory.trace.filter((m) => m.dir === 'in' && m.cseq?.method === 'REGISTER').map((m) => m.status);
    assert.deepEqual(registerResponses.slice(0, 1), [401], `responses to REGISTER: ${registerResponses.join(', ')}`);
    assert.ok(registerResponses.length >= 2, `responses to REGISTER: ${registerResponses.join(', ')}`);
    assert.deepEqual(await bindingsOf('alice'), []);
    await mallory.stop();
  });

  it('alice and bob register over ws; the store shows both bound to their WebSocket', async () => {
    alice = await startUa('alice', 'pw-alice', true);
    bob = await startUa('bob', 'pw-bob', true);
    assert.equal(alice.isRegistered(), true);
    assert.equal(bob.isRegistered(), true);

    const list = await gw.registrar.store.list();
    for (const ua of [alice, bob]) {
      const mine = list.filter((b) => b.aor === ua.user);
      assert.equal(mine.length, 1, `${ua.user}: bindings ${JSON.stringify(mine)}`);
      const b = mine[0]!;
      assert.equal(b.received.transport, 'ws');
      assert.ok(b.received.flowId, `${ua.user}: binding without a flow id`);
      assert.match(b.contact, /@[^;>]+\.invalid/, `${ua.user}: contact ${b.contact}`);
      assert.ok(b.contact.includes(ua.contactUri.replace(/^sip:/, '').split(';')[0]!), `${b.contact} vs ${ua.contactUri}`);
      assert.ok(b.expires > Date.now());
    }
    assert.notEqual(list.find((b) => b.aor === 'alice')!.received.flowId, list.find((b) => b.aor === 'bob')!.received.flowId);
  });

  it('alice calls bob: ringing, answer, ACK; the gateway anchors the media; alice hangs up and bob sees the BYE', async () => {
    assert.ok(alice && bob, 'needs alice and bob registered by the previous test');
    const incoming = new Promise<JsSipCall>((resolve) => {
      bob!.onIncoming(async (call) => {
        resolve(call);
        await call.answer();
      });
    });

    const call = alice.call(`sip:bob@${DOMAIN}`);
    const bobCall = await within(incoming, 10_000, 'the INVITE reaching bob');
    assert.equal(bobCall.direction, 'incoming');
    assert.match(bobCall.request ?? '', /^INVITE sip:[^ ]+@[^ ]+\.invalid;transport=ws SIP\/2\.0\r\n/, 'INVITE to bob targets his registered contact');

    const progress = await call.progress;
    assert.equal(progress.status, 180);
    await call.confirmed;
    await bobCall.confirmed; // bob got the ACK

    // the gateway anchors the media: bob gets an offer naming the gateway (ICE-lite, its
    // own fingerprint and candidates) with alice's codecs, and alice an answer likewise
    const alicePc = call.peerConnection;
    const bobPc = bobCall.peerConnection;
    assert.ok(alicePc instanceof FixedSdpPeerConnection);
    assert.ok(bobPc instanceof FixedSdpPeerConnection);
    const offer = alicePc.localDescription?.sdp;
    assert.ok(offer);
    const toBob = bobPc.remoteSdps[0];
    assert.equal(toBob?.type, 'offer');
    assert.notEqual(toBob?.sdp, offer);
    assert.match(toBob!.sdp, /^a=ice-lite/m);
    assert.match(toBob!.sdp, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m);
    assert.match(toBob!.sdp, /^a=rtcp-mux/m);
    assert.match(toBob!.sdp, /^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/m);
    assert.equal(alicePc.remoteDescription?.type, 'answer');
    assert.match(alicePc.remoteDescription!.sdp, /^a=ice-lite/m);
    assert.match(alicePc.remoteDescription!.sdp, /^a=setup:passive/m, 'the gateway answers DTLS passive');
    assert.equal(alicePc.signalingState, 'stable');
    assert.equal(bobPc.signalingState, 'stable');

    // one call id end to end, and the gateway stays on the path (Record-Route)
    assert.equal(call.callId, bobCall.callId);
    const inviteAtBob = bob.trace.find((m) => m.dir === 'in' && m.method === 'INVITE');
    assert.ok(inviteAtBob?.header('record-route'), 'INVITE to bob carries a Record-Route');

    const hangup = await call.hangup();
    assert.equal(hangup.kind, 'ended');
    assert.equal(hangup.originator, 'local');
    assert.equal(hangup.byeStatus, 200, 'BYE answered 200 by bob through the gateway');

    const bobEnd = await bobCall.ended;
    assert.equal(bobEnd.kind, 'ended');
    assert.equal(bobEnd.originator, 'remote');
    assert.equal(bobEnd.method, 'BYE');
    assert.equal(bobEnd.cause, 'Terminated');
    assert.equal(bobPc.closed, true);
    assert.equal(alicePc.closed, true);
    assert.deepEqual(bob.errors, []);
    assert.deepEqual(call.errors, []);
    assert.deepEqual(bobCall.errors, []);
  });

  it('bob rejects with 486: alice sees Busy; alice cancels while ringing: bob sees the CANCEL, alice the 487', async () => {
    assert.ok(alice && bob, 'needs alice and bob registered');
    bob.onIncoming(async (call) => {
      await call.reject(486);
    });
    const busy = alice.call(`sip:bob@${DOMAIN}`);
    const busyEnd = await busy.ended;
    assert.equal(busyEnd.kind, 'failed');
    assert.equal(busyEnd.status, 486);
    assert.equal(busyEnd.cause, 'Busy');
    await assert.rejects(busy.confirmed, (e: unknown) => (e as { status?: number }).status === 486);

    const unsubscribe = bob.onIncoming(() => undefined); // let it ring
    const ringing = alice.call(`sip:bob@${DOMAIN}`);
    assert.equal((await ringing.progress).status, 180);
    const bobCall = bob.calls.at(-1)!;
    assert.equal(bobCall.callId, ringing.callId);
    const since = alice.trace.length;
    const canceled = await ringing.hangup();
    assert.equal(canceled.kind, 'failed');
    assert.equal(canceled.cause, 'Canceled');
    const bobEnd = await bobCall.ended;
    assert.equal(bobEnd.method, 'CANCEL');
    assert.equal(bobEnd.cause, 'Canceled');
    const final = await alice.waitForMessage((m) => m.dir === 'in' && m.cseq?.method === 'INVITE' && m.callId === ringing.callId && (m.status ?? 0) >= 200, { since });
    assert.equal(final.status, 487);
    unsubscribe();
  });

  it("closing bob's WebSocket (no un-REGISTER) removes his binding; alice's stays", async () => {
    assert.ok(alice && bob, 'needs alice and bob registered');
    assert.equal((await bindingsOf('bob')).length, 1);
    const sentBefore = bob.trace.filter((m) => m.dir === 'out').length;
    await bob.dropConnection({ abrupt: true });
    assert.equal(bob.trace.filter((m) => m.dir === 'out').length, sentBefore, 'nothing sent (no un-REGISTER)');
    await waitUntil('bob binding gone', async () => (await bindingsOf('bob')).length === 0);
    assert.equal((await bindingsOf('alice')).length, 1);

    // a call to bob now finds nobody
    const call = alice.call(`sip:bob@${DOMAIN}`);
    const end = await call.ended;
    assert.equal(end.kind, 'failed');
    assert.ok(end.status === 404 || end.status === 480, `call to an unregistered user: ${end.status} ${end.cause}`);
  });

  // The callee's connection closing fails its branch at once (nothing can answer over it):
  // the caller is not left ringing until Timer C.
  it("bob's WebSocket drops while ringing: alice gets a final response at once", async () => {
    assert.ok(alice, 'needs alice registered');
    const bob2 = await startUa('bob', 'pw-bob', true);
    bob2.onIncoming(() => undefined); // let it ring
    const call = alice.call(`sip:bob@${DOMAIN}`);
    assert.equal((await call.progress).status, 180);
    await bob2.dropConnection({ abrupt: true });
    const end = await call.waitEnded(2000);
    assert.equal(end.kind, 'failed');
    assert.ok([408, 430, 480, 503].includes(end.status ?? 0), `final response ${end.status} ${end.cause}`);
  });

  it('alice stops cleanly: un-REGISTER removes her binding', async () => {
    assert.ok(alice, 'needs alice registered');
    await alice.stop();
    assert.equal(alice.isConnected(), false);
    const unreg = alice.trace.filter((m) => m.dir === 'in' && m.cseq?.method === 'REGISTER').at(-1);
    assert.equal(unreg?.status, 200);
    assert.deepEqual(await bindingsOf('alice'), []);
  });
});
