/**
 * wsbridge: the gateway answers the caller itself and bridges it to a WebSocket server.
 * First on a call answered by the media layer directly (media.answerAsEndpoint, a bare RTP
 * endpoint as the caller): the first JSON message, one L16 frame per 20 ms RTP frame,
 * nothing in silence, server audio heard, comfort noise between, DTMF as text, either side
 * closing ends the other. Then end to end: a desk phone INVITEs `wsbridge` with the
 * P-wsbridge-* headers (URL-encoded) through the gateway's local endpoint, as a trusted caller
 * (wsbridge from SIP is for trusted callers and URLs of taps.allowedUrls only).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { detectTone } from '../../server/audio/tone.js';
import { TapUrlPolicy } from '../../server/taps/url-policy.js';
import { wsbridgeApp } from '../../server/calls/wsbridge-app.js';
import { waitFor } from '../helpers/gateway.js';
import { buildSdp, offerFormats, parseSdp, planMedia, RtpMedia, RtpPhone, sleep } from '../helpers/rtp-phone.js';
import { closeRigAndServer, concat, l16, rms, sineL16, startRigAndServer, type TapRig } from '../helpers/tap-call.js';
import { trustingScript } from '../helpers/trusted-script.js';
import { WsTapServer } from '../helpers/ws-tap-server.js';

/** a port nothing listens on (a server that cannot be reached) */
const UNREACHABLE = 'ws://127.0.0.1:1/none';

describe('wsbridge', () => {
  let rig: TapRig;
  let server: WsTapServer;

  let allowedUrls: string[];

  before(async () => ({ rig, server } = await startRigAndServer((s) => {
    allowedUrls = [s.url('/sip'), UNREACHABLE];
    return [{ taps: { allowedUrls } }, { script: trustingScript() }];
  })));
  after(() => closeRigAndServer(rig, server));

  test('on a call the gateway answered itself: JSON first, L16 per RTP frame, nothing in silence, audio back, DTMF, close ends the call', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    const call = rig.gw.calls.create(`wsb-${port}@test`, 'tag-wsb', { uri: 'sip:alice@127.0.0.1', display: null, transport: 'udp', address: '127.0.0.1', port: 5060 }, 'sip:wsbridge@127.0.0.1', []);
    call.media = true;
    call.onEnd(() => rig.gw.media!.delete(call.id));
    const local = { formats: offerFormats(['PCMU']), direction: 'sendrecv' as const, rtcpMux: true };
    const offer = buildSdp({ sessionId: '42', version: 1, address: '127.0.0.1', port, ...local });
    const answer = await rig.gw.media!.answerAsEndpoint(call.id, offer, ['pcmu', 'pcma', 'g722', 'opus']);
    const media = new RtpMedia({ rtp: sock, rtcp: null }, 440, 'wsbridge-test');
    sock.on('message', (buf, rinfo) => media.receive(buf, rinfo.address, rinfo.port));
    const plan = planMedia(local, parseSdp(answer))!;
    media.apply(plan);
    try {
      const index = server.connections.length;
      const tap = rig.taps.startWsBridge(call.id, { uri: server.url('/bridge'), headers: '{"from":"alice","to":"wsbridge","content-type":"ignored"}', contentType: 'audio/l16;rate=16000' });
      await tap.ready;
      const conn = await server.connection(index);
      await conn.until('audio', () => conn.binaries.length >= 50, 3000);
      assert.equal(conn.messages[0]!.text, '{"content-type":"audio/l16;rate=16000","from":"alice","to":"wsbridge"}');
      const frames = conn.binaries;
      for (const f of frames) assert.equal(f.data.length, 640, 'one 20 ms frame of 16 kHz L16 per message');
      assert.ok(detectTone(concat(frames.slice(10).map((f) => l16(f.data))), 16000, 440), 'the caller\'s tone');

      // silence: the caller stops sending, the server gets nothing
      media.apply({ ...plan, send: false });
      await sleep(150);
      const n = conn.binaries.length;
      await sleep(500);
      assert.equal(conn.binaries.length, n, 'nothing sent while the caller sends nothing');
      media.apply(plan);
      await conn.until('audio again', () => conn.binaries.length > n + 10, 2000);

      // the server's audio (a whole second at once), then comfort noise
      const since = Date.now();
      conn.send(sineL16(1000, 16000, 1000));
      await sleep(1400);
      assert.ok(media.heardTone(1000, { since: since + 100, until: since + 950, skipMs: 0, minMs: 400 }), 'the caller hears the server');
      const gap = media.audio({ since: since + 1200 });
      assert.ok(gap.length >= 800, 'audio keeps coming between the server\'s messages');
      const level = rms(gap);
      assert.ok(level > 0 && level < 100, `comfort noise, not silence nor the tone (rms ${level.toFixed(1)})`);

      // DTMF from the caller, as text
      await media.sendDtmf('5', 100);
      const dtmf = await conn.until('dtmf', () => conn.json.find((m) => m.event === 'websocket:dtmf'), 2000);
      assert.deepEqual(dtmf, { event: 'websocket:dtmf', digit: '5', duration: 100 });

      // the server closes: the tap ends (the SIP side then sends BYE)
      conn.ws.close(1000, 'done');
      assert.match(await tap.ended, /server closed/);
      assert.equal(tap.counters.framesDropped, 0);
    } finally {
      media.stop();
      sock.close();
      rig.gw.calls.end(call, 'test over');
    }
  });

  test('end to end: INVITE to wsbridge with the P-wsbridge-* headers; BYE closes the socket, closing the socket sends BYE', async (t) => {
    const local = (rig.gw as unknown as { local?: { register(name: string, app: unknown): void } }).local;
    if (!local) {
      t.skip('the gateway has no local endpoint');
      return;
    }
    local.register('wsbridge', wsbridgeApp(rig.taps, new TapUrlPolicy({ allowedUrls })));
    const gateway = `127.0.0.1:${rig.gw.ports.udp}`;
    const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway, tone: 440, codecs: ['G722', 'PCMU'] });
    rig.phones.push(alice);
    await alice.register();
    const headers: [string, string][] = [
      ['P-wsbridge-websocket-uri', encodeURIComponent(server.url('/sip'))],
      ['P-wsbridge-websocket-headers', encodeURIComponent('{"caller":"alice","n":1}')],
      ['P-wsbridge-websocket-content-type', encodeURIComponent('audio/l16;rate=8000')],
    ];
    // 1: the caller hangs up
    let index = server.connections.length;
    const pc = alice.call('wsbridge', { headers });
    await pc.answered;
    const conn = await server.connection(index);
    await conn.until('audio', () => conn.binaries.length > 25, 3000);
    assert.deepEqual(JSON.parse(conn.messages[0]!.text!), { 'content-type': 'audio/l16;rate=8000', caller: 'alice', n: 1 });
    assert.equal(conn.binaries[0]!.data.length, 320, '8 kHz frames');
    assert.equal(pc.codec, 'G722');
    const since = Date.now();
    conn.send(sineL16(1200, 8000, 800));
    await sleep(1000);
    assert.ok(pc.heardTone(1200, { since: since + 100, until: since + 750, skipMs: 0, minMs: 300 }), 'alice hears the server');
    await pc.hangup();
    assert.equal((await conn.closed).code, 1000, 'BYE closed the socket');
    await waitFor('the tap to go', () => rig.taps.size === 0, 2000);

    // 2: the server closes: alice gets a BYE
    index = server.connections.length;
    const pc2 = alice.call('wsbridge', { headers });
    await pc2.answered;
    const conn2 = await server.connection(index);
    await conn2.until('audio', () => conn2.binaries.length > 5, 3000);
    conn2.ws.close(1000, 'bot done');
    const end = await pc2.ended;
    assert.deepEqual(end, { by: 'remote', reason: 'bye' });

    // 3: a server that cannot be reached: the INVITE fails
    const pc3 = alice.call('wsbridge', { headers: [['P-wsbridge-websocket-uri', encodeURIComponent(UNREACHABLE)]] });
    await assert.rejects(pc3.answered, (e: unknown) => (e as { status?: number }).status === 503);
    await alice.unregister();
  });
});
