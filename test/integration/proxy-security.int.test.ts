/**
 * The proxy against strangers (issue 10): calls only from authenticated users (as the user in
 * their From) or trusted peers, identity asserted to the callee, in-dialog requests relayed
 * only for dialogs set up through the gateway (no open relay, no forged BYE), signed flow
 * tokens, and a cap on branches. Each refusal next to the legitimate path still working:
 * an authenticated call with audio both ways, a trusted trunk calling in.
 *
 * Loopback is not trusted here (the other suites trust it); 127.0.0.2 plays a trusted trunk
 * and 127.0.0.3 a host an attacker would like to reach through us.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { RtpPhone, registeredPair, sleep } from '../helpers/rtp-phone.js';
import { request, UdpSipClient } from '../helpers/sip-client.js';

/** A UDP socket on 127.0.0.3 that counts what reaches it: where no relayed request may arrive. */
async function listener(): Promise<{ port: number; got: string[]; close: () => void }> {
  const s = dgram.createSocket('udp4');
  const got: string[] = [];
  s.on('message', (b) => got.push(b.toString('latin1').split('\r\n')[0]!));
  await new Promise<void>((r) => s.bind(0, '127.0.0.3', () => r()));
  return { port: s.address().port, got, close: () => s.close() };
}

/** A raw client bound to `address` (127.0.0.2: the trusted trunk). */
async function clientOn(address: string): Promise<UdpSipClient> {
  return UdpSipClient.open(address);
}

describe('calls through the proxy from strangers and users', () => {
  let gw: Gateway;
  let gateway: string;
  const phones: RtpPhone[] = [];

  before(async () => {
    gw = await startTestGateway({ sip: { trustedPeers: ['127.0.0.2/32'], maxBranches: 3 }, registrar: { maxContacts: 20 } });
    gateway = `127.0.0.1:${gw.ports.udp}`;
  });
  after(() => gw.close());
  // each test's phones unregister and close: a contact left registered would get a branch
  afterEach(async () => {
    for (const p of phones.splice(0)) {
      if (p.registered) await p.unregister().catch(() => undefined);
      await p.close();
    }
  });

  async function pair(): Promise<{ alice: RtpPhone; bob: RtpPhone }> {
    const p = await registeredPair(gateway);
    phones.push(p.alice, p.bob);
    return p;
  }

  test('an INVITE without credentials gets 407 and rings nobody, even with a user\'s From', async () => {
    const { bob } = await pair();
    let rang = 0;
    bob.onIncoming(() => rang++);
    const c = await UdpSipClient.open();
    try {
      const r = request('INVITE', `sip:bob@127.0.0.1:${gw.ports.udp}`, c, { headers: [] });
      const text = r.text.replace('From: <sip:tester@127.0.0.1>', 'From: "Alice" <sip:alice@127.0.0.1>');
      c.send(text, gw.ports.udp!);
      const res = await c.finalResponse(r.callId);
      assert.equal(res.status, 407);
      assert.match(res.get('proxy-authenticate') ?? '', /^Digest /);
      for (const m of ['MESSAGE', 'SUBSCRIBE', 'REFER']) {
        const o = request(m, `sip:bob@127.0.0.1:${gw.ports.udp}`, c);
        c.send(o.text, gw.ports.udp!);
        assert.equal((await c.finalResponse(o.callId, m)).status, 407, m);
      }
      await sleep(200);
      assert.equal(rang, 0, 'bob never rang');
    } finally {
      c.close();
      bob.onIncoming(null);
    }
  });

  test('alice\'s credentials with bob\'s From: 403, nothing rings', async () => {
    const { bob } = await pair();
    // carol authenticates as herself but claims to be bob ($au != $fU)
    const carol = await RtpPhone.start({ user: 'carol', password: 'pw-carol', gateway, domain: '127.0.0.1' });
    phones.push(carol);
    let rang = 0;
    bob.onIncoming(() => rang++);
    const call = carol.call('bob', { fromUser: 'bob' });
    const end = await call.ended;
    assert.equal(end.status, 403);
    assert.equal(rang, 0);
    bob.onIncoming(null);
  });

  test('an authenticated call: audio both ways, the callee told who called, a forged identity dropped', async () => {
    const { alice, bob } = await pair();
    const call = alice.call('bob', { headers: [['P-Asserted-Identity', '<sip:ceo@127.0.0.1>']] });
    await call.answered;
    const incoming = await bob.nextIncoming();
    try {
      await waitFor('bob to hear 440 Hz', () => incoming.heardTone(440), 5000);
      await waitFor('alice to hear 880 Hz', () => call.heardTone(880), 5000);
      const pai = incoming.request?.getAll('p-asserted-identity') ?? [];
      assert.equal(pai.length, 1, pai.join(' | '));
      assert.match(pai[0]!, /<sip:alice@/);
      assert.equal(incoming.request?.get('proxy-authorization'), undefined, 'credentials are not forwarded');
    } finally {
      await call.hangup().catch(() => undefined);
    }
  });

  test('a trusted peer (sip.trustedPeers) calls a user without credentials', async () => {
    const { bob } = await pair();
    const trunk = await clientOn('127.0.0.2');
    try {
      const r = request('INVITE', `sip:bob@127.0.0.1:${gw.ports.udp}`, trunk, { body: sdp(trunk.port + 2) });
      trunk.send(r.text, gw.ports.udp!);
      const incoming = await bob.nextIncoming();
      assert.ok(incoming, 'bob rings');
      const res = await trunk.finalResponse(r.callId, 'INVITE', 10_000);
      assert.equal(res.status, 200);
    } finally {
      trunk.close();
    }
  });

  test('no open relay: an in-dialog request naming another host is not relayed (Route with us, forged token)', async () => {
    const target = await listener();
    const c = await UdpSipClient.open();
    try {
      const forgedToken = 'u' + Buffer.from(`127.0.0.3 ${target.port}`).toString('base64url');
      for (const [method, route] of [
        ['INVITE', `<sip:127.0.0.1:${gw.ports.udp};lr>`],
        ['MESSAGE', `<sip:127.0.0.1:${gw.ports.udp};lr>`],
        ['INFO', `<sip:${forgedToken}@127.0.0.1:${gw.ports.udp};lr>`],
      ] as const) {
        const r = request(method, `sip:victim@127.0.0.3:${target.port}`, c, { toTag: 'made-up', headers: [`Route: ${route}`] });
        c.send(r.text, gw.ports.udp!);
        assert.equal((await c.finalResponse(r.callId, method)).status, 481, method);
      }
      await sleep(300);
      assert.deepEqual(target.got, [], 'nothing reached 127.0.0.3');
    } finally {
      c.close();
      target.close();
    }
  });

  test('a BYE with the call\'s Call-ID but forged tags ends nothing', async () => {
    const { alice, bob } = await pair();
    const call = alice.call('bob');
    await call.answered;
    const incoming = await bob.nextIncoming();
    const c = await UdpSipClient.open();
    try {
      const up = (): boolean => gw.calls.list().some((x) => x.callId === call.callId && x.state === 'answered');
      assert.ok(up());
      const bye = request('BYE', `sip:bob@127.0.0.1:${gw.ports.udp}`, c, { callId: call.callId, toTag: 'forged', headers: [`Route: <sip:127.0.0.1:${gw.ports.udp};lr>`] });
      c.send(bye.text, gw.ports.udp!);
      assert.equal((await c.finalResponse(call.callId, 'BYE')).status, 481);
      await sleep(300);
      assert.ok(up(), 'the call is still up');
      const since = Date.now();
      await waitFor('bob to keep hearing alice', () => incoming.heardTone(440, { since }), 5000);
    } finally {
      c.close();
      await call.hangup().catch(() => undefined);
    }
  });

  test('one INVITE forks into at most sip.maxBranches branches', async () => {
    const many: RtpPhone[] = [];
    for (let i = 0; i < 6; i++) {
      const p = await RtpPhone.start({ user: 'uas', password: 'pw-uas', gateway });
      many.push(p);
      phones.push(p);
      await p.register();
    }
    let rang = 0;
    for (const p of many) p.onIncoming(() => rang++);
    const { alice } = await pair();
    const call = alice.call('uas');
    await call.ringing.catch(() => undefined);
    await sleep(500);
    assert.equal(rang, 3);
    await call.hangup().catch(() => undefined);
  });
});

function sdp(port: number): string {
  return ['v=0', `o=- 1 1 IN IP4 127.0.0.2`, 's=-', 'c=IN IP4 127.0.0.2', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
}
