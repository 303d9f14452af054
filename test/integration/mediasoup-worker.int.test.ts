/**
 * The mediasoup worker binary (installed by scripts/ensure-mediasoup-worker.mjs) starts, and a
 * router with the gateway's audio codecs gets a comedia PlainTransport (SIP side) and a
 * WebRtcTransport (browser side) on 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as mediasoup from 'mediasoup';
import type { types } from 'mediasoup';

const audioCodecs: types.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'audio', mimeType: 'audio/PCMU', clockRate: 8000, preferredPayloadType: 0 },
  { kind: 'audio', mimeType: 'audio/PCMA', clockRate: 8000, preferredPayloadType: 8 },
  { kind: 'audio', mimeType: 'audio/telephone-event', clockRate: 8000 },
];

test('mediasoup worker runs a router with a PlainTransport and a WebRtcTransport', async (t) => {
  const worker = await mediasoup.createWorker({ logLevel: 'warn' });
  t.after(() => {
    if (!worker.closed) worker.close();
  });

  let died: Error | undefined;
  worker.on('died', (error) => {
    died = error;
  });

  assert.equal(typeof worker.pid, 'number');
  assert.ok(worker.pid > 0, `worker pid ${worker.pid}`);
  assert.equal(worker.closed, false);

  const router = await worker.createRouter({ mediaCodecs: audioCodecs });
  const mimeTypes = router.rtpCapabilities.codecs!.map((c) => c.mimeType.toLowerCase());
  for (const mime of ['audio/opus', 'audio/pcmu', 'audio/pcma', 'audio/telephone-event']) {
    assert.ok(mimeTypes.includes(mime), `router capabilities lack ${mime}: ${mimeTypes.join(', ')}`);
  }

  const plain = await router.createPlainTransport({
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: true,
    comedia: true,
  });
  assert.equal(plain.tuple.localAddress, '127.0.0.1');
  assert.ok(plain.tuple.localPort > 0);

  const webrtc = await router.createWebRtcTransport({
    listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }],
  });
  assert.ok(webrtc.iceCandidates.length > 0);
  for (const candidate of webrtc.iceCandidates) {
    assert.equal(candidate.address, '127.0.0.1');
  }
  assert.ok(webrtc.dtlsParameters.fingerprints.some((f) => f.algorithm === 'sha-256'));

  const dump = await router.dump();
  assert.equal(dump.id, router.id);
  assert.deepEqual([...dump.transportIds].sort(), [plain.id, webrtc.id].sort());

  const plainDump = await plain.dump();
  assert.equal(plainDump.comedia, true);

  worker.close();
  assert.equal(worker.closed, true);
  assert.equal(router.closed, true);
  assert.equal(plain.closed, true);
  assert.equal(webrtc.closed, true);
  assert.equal(died, undefined, `worker died: ${died?.message}`);
});
