/**
 * Taps asked for in SIP, through the gateway as it runs: an INVITE carrying
 * X-Audio-Stream starts a tap when the call is answered (the routing script's sip.tap()),
 * and an INVITE to `wsbridge` with the P-wsbridge-* headers is answered by the gateway and
 * bridged to the WebSocket server. Both for trusted callers and allowed URLs (the refusals:
 * taps-ssrf.int.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { detectTone } from '../../server/audio/tone.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { registeredPair, type RtpPhone } from '../helpers/rtp-phone.js';
import { trustingScript } from '../helpers/trusted-script.js';
import { WsTapServer } from '../helpers/ws-tap-server.js';

function pcm(frames: { data: Buffer }[]): Int16Array {
  const all = Buffer.concat(frames.map((f) => f.data));
  return new Int16Array(all.buffer, all.byteOffset, all.length >> 1);
}

describe('taps asked for in SIP', () => {
  let gw: Gateway;
  let server: WsTapServer;
  let alice: RtpPhone;
  let bob: RtpPhone;

  before(async () => {
    server = await WsTapServer.start();
    // taps from SIP: trusted callers (here every one) and the URLs of taps.allowedUrls only
    gw = await startTestGateway({ media: { minPort: 39000, maxPort: 39199 }, taps: { allowedUrls: [server.url('/asr'), server.url('/bridge')] } }, { script: trustingScript() });
    ({ alice, bob } = await registeredPair(`127.0.0.1:${gw.ports.udp}`));
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await server?.close();
    await gw?.close();
  });

  test('X-Audio-Stream on the INVITE: the call, once answered, streams to the server', async () => {
    const call = alice.call('bob', { headers: [['X-Audio-Stream', `start ${server.url('/asr')} stereo 8k {"who":"alice"}`]] });
    await call.answered;
    const c = await server.connection(0);
    assert.equal(await c.until('the metadata', () => c.texts[0]), '{"who":"alice"}', 'the metadata comes first');
    await c.until('a second of audio', () => c.binaries.length >= 50);
    // stereo 8k: 20 ms frames of 160 samples x 2 channels x 2 bytes; caller left, callee right
    assert.equal(c.binaries[10]!.data.length, 640);
    const s = pcm(c.binaries.slice(10, 50));
    const left = s.filter((_, i) => i % 2 === 0);
    const right = s.filter((_, i) => i % 2 === 1);
    assert.ok(detectTone(Int16Array.from(left), 8000, 440, 15), 'the caller (440 Hz) on the left');
    assert.ok(detectTone(Int16Array.from(right), 8000, 880, 15), 'the callee (880 Hz) on the right');
    const [tap] = gw.taps.list();
    assert.equal((tap?.toJSON() as { state?: string }).state, 'connected');
    await call.hangup();
    await waitFor('the tap to end with the call', () => gw.taps.list().length === 0);
  });

  test('an INVITE to wsbridge is answered by the gateway and bridged to the WebSocket', async () => {
    const uri = encodeURIComponent(server.url('/bridge'));
    const headers = encodeURIComponent(JSON.stringify({ app: 'demo' }));
    const call = alice.call('wsbridge', {
      headers: [['P-wsbridge-websocket-uri', uri], ['P-wsbridge-websocket-headers', headers], ['P-wsbridge-websocket-content-type', 'audio/l16;rate=16000']],
    });
    await call.answered;
    const c = await server.connection(1);
    const first = JSON.parse(await c.until('the first message', () => c.texts[0])) as Record<string, unknown>;
    assert.equal(first['content-type'], 'audio/l16;rate=16000');
    assert.equal(first.app, 'demo');
    await c.until('audio frames', () => c.binaries.length >= 30);
    assert.equal(c.binaries[5]!.data.length, 640, '20 ms of 16 kHz L16 per frame');
    assert.ok(detectTone(pcm(c.binaries.slice(5, 30)), 16000, 440, 15), 'the caller\'s tone');
    // the server closing ends the call: the caller gets a BYE
    c.ws.close();
    const end = await call.waitEnded(5000);
    assert.equal(end.by, 'remote');
  });
});
