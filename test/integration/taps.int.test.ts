/**
 * Taps on a real call (two RtpPhones through the gateway, media in mediasoup): every
 * mix and rate, checked as audio. alice (the caller) sends 440 Hz, bob 880 Hz; the ws test
 * server must find 440 Hz alone in mono, both in mixed, 440 left and 880 right in stereo,
 * in frames of the right size arriving every bufferMs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TapErrorCode } from '../../server/taps/errors.js';
import { waitFor } from '../helpers/gateway.js';
import { closeRigAndServer, concat, l16, placeCall, startRigAndServer, toneShares, type TapRig } from '../helpers/tap-call.js';
import { WsTapServer, type TapConnection } from '../helpers/ws-tap-server.js';

describe('audio taps: mono, mixed, stereo at 8k and 16k', () => {
  let rig: TapRig;
  let server: WsTapServer;

  before(async () => ({ rig, server } = await startRigAndServer()));
  after(() => closeRigAndServer(rig, server));

  test('one call, seven taps at once: first message, frame sizes and timing, tones per channel', async (t) => {
    const c = await placeCall(rig);
    try {
      const specs = [
        { name: 'mono-8k', mix: 'mono', rate: 8000, bufferMs: 20 },
        { name: 'mono-16k', mix: 'mono', rate: 16000, bufferMs: 20 },
        { name: 'mixed-8k', mix: 'mixed', rate: 8000, bufferMs: 20 },
        { name: 'mixed-16k', mix: 'mixed', rate: 16000, bufferMs: 20 },
        { name: 'stereo-8k', mix: 'stereo', rate: 8000, bufferMs: 20 },
        { name: 'stereo-16k', mix: 'stereo', rate: 16000, bufferMs: 20 },
        { name: 'mono-16k-100ms', mix: 'mono', rate: 16000, bufferMs: 100 },
      ] as const;
      for (const s of specs) {
        rig.taps.start(c.gwCall.id, { url: server.url(`/${s.name}`), mix: s.mix, rate: s.rate, bufferMs: s.bufferMs, metadata: JSON.stringify({ tap: s.name, callId: c.gwCall.callId }) });
      }
      await waitFor('7 connections', () => server.connections.length >= 7, 5000);
      const conns = new Map<string, TapConnection>();
      for (const conn of server.connections) conns.set(conn.path.slice(1), conn);
      // 2.5 s of audio
      await new Promise((r) => setTimeout(r, 2500));
      for (const s of specs) {
        await t.test(s.name, () => {
          const conn = conns.get(s.name)!;
          assert.ok(conn, `connection for ${s.name}`);
          assert.equal(conn.messages[0]!.binary, false, 'the metadata comes first, as text');
          assert.deepEqual(JSON.parse(conn.messages[0]!.text!), { tap: s.name, callId: c.gwCall.callId });
          const frames = conn.binaries;
          const channels = s.mix === 'stereo' ? 2 : 1;
          const bytes = (s.rate / 50) * 2 * channels * (s.bufferMs / 20);
          assert.ok(frames.length >= (2000 / s.bufferMs) * 0.9, `${frames.length} frames in 2.5 s`);
          for (const f of frames) assert.equal(f.data.length, bytes, 'every frame has the size of its rate, mix and duration');
          // timing: as many frames as the time they cover (real time, not a burst); how steady
          // they come is the benchmark's to measure, not a test's (this machine's timers vary)
          const steady = frames.slice(5);
          const mean = (steady.at(-1)!.at - steady[0]!.at) / (steady.length - 1);
          assert.ok(Math.abs(mean - s.bufferMs) < s.bufferMs * 0.1, `mean interval ${mean.toFixed(2)} ms for ${s.bufferMs} ms frames`);
          // content, from 0.5 s on (the start has silence while the FIFOs fill); the shares
          // leave room for the clicks of a late packet on a busy machine, not for a wrong tone
          // or channel
          const pcm = concat(steady.slice(Math.ceil(500 / s.bufferMs)).map((f) => l16(f.data)));
          if (channels === 1) {
            const [p440, p880] = toneShares(pcm, s.rate, [440, 880]);
            if (s.mix === 'mono') {
              assert.ok(p440! > 0.5, `mono: 440 Hz share ${p440}`);
              assert.ok(p880! < 0.05, `mono: no 880 Hz (share ${p880})`);
            } else {
              assert.ok(p440! > 0.15 && p880! > 0.15 && p440! + p880! > 0.5, `mixed: both tones (440: ${p440}, 880: ${p880})`);
            }
          } else {
            const left = new Int16Array(pcm.length / 2);
            const right = new Int16Array(pcm.length / 2);
            for (let i = 0; i < left.length; i++) {
              left[i] = pcm[2 * i]!;
              right[i] = pcm[2 * i + 1]!;
            }
            const [l440, l880] = toneShares(left, s.rate, [440, 880]);
            const [r440, r880] = toneShares(right, s.rate, [440, 880]);
            assert.ok(l440! > 0.5 && l880! < 0.05, `stereo left is the caller: 440 ${l440}, 880 ${l880}`);
            assert.ok(r880! > 0.5 && r440! < 0.05, `stereo right is the callee: 440 ${r440}, 880 ${r880}`);
          }
        });
      }
      const list = rig.taps.forCall(c.gwCall.id);
      assert.equal(list.length, 7);
      for (const tap of list) {
        assert.equal(tap.state, 'connected');
        assert.equal(tap.counters.framesDropped, 0);
        assert.ok(tap.counters.framesSent > 20);
      }
      // the call ends: every tap stops and closes its socket normally
      await c.hangup();
      await waitFor('taps to stop', () => rig.taps.forCall(c.gwCall.id).length === 0, 3000);
      for (const conn of conns.values()) assert.equal((await conn.closed).code, 1000);
      assert.ok(!rig.events.some((e) => e.name === 'error' && (e.body as { message: { code: number } }).message.code !== TapErrorCode.SLOW_SERVER));
    } finally {
      await c.hangup();
    }
  });
});
