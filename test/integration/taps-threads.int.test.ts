/**
 * Taps in worker threads: a thread that dies ends its taps with an event and the call goes
 * on; admission control refuses the tap beyond the limits with the documented code (107
 * OVERLOADED), as an event and as the API's 503, and the taps already running carry on.
 * The tap's jitter shows in GET /api/taps and the frame deviation in /metrics.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { TapErrorCode } from '../../server/taps/errors.js';
import { TapInputError } from '../../server/taps/options.js';
import { waitFor } from '../helpers/gateway.js';
import { placeCall, startRig, type TapRig } from '../helpers/tap-call.js';
import { WsTapServer } from '../helpers/ws-tap-server.js';

function errorCodes(rig: TapRig, tapId: string): number[] {
  return rig.events.filter((e) => e.tapId === tapId && e.name === 'error').map((e) => (e.body as { message: { code: number } }).message.code);
}

describe('taps in worker threads', () => {
  let server: WsTapServer;
  before(async () => (server = await WsTapServer.start()));
  after(() => server.close());

  test('a tap thread that dies ends its taps with WORKER_DIED; the call goes on; the next tap runs on the restarted thread', async () => {
    const rig = await startRig({ taps: { threads: 1 } });
    try {
      const c = await placeCall(rig, { callerTone: 440, calleeTone: 880 });
      try {
        const tap = rig.taps.start(c.gwCall.id, { url: server.url('/dies'), mix: 'mixed', rate: 16000, playTo: 'caller' });
        const index = server.connections.length;
        await tap.ready;
        const conn = await server.connection(index);
        // the server speaks into the call: the caller hears the tap's stream, not bob directly
        conn.send(Buffer.alloc(32000 * 2));
        await waitFor('playing', () => (tap.toJSON() as { playing: boolean }).playing, 3000);

        await rig.taps.pool.threads[0]!.worker.terminate();
        assert.match(await tap.ended, /worker died/);
        assert.equal(tap.state, 'stopped');
        assert.ok(errorCodes(rig, tap.id).includes(TapErrorCode.WORKER_DIED), 'an error event with code 106');
        assert.ok(rig.events.some((e) => e.tapId === tap.id && e.name === 'stop'), 'and a stop event');

        // the call: still up, both parties hear each other again
        const since = Date.now();
        await sleep(1200);
        assert.equal(rig.gw.calls.get(c.gwCall.id)?.state, 'answered');
        assert.ok(c.call.heardTone(880, { since: since + 300 }), 'alice hears bob again');
        assert.ok(c.incoming.heardTone(440, { since: since + 300 }), 'bob hears alice');

        // the thread was started again: a new tap on the same call streams
        const again = rig.taps.start(c.gwCall.id, { url: server.url('/again'), mix: 'mono', rate: 8000 });
        await again.ready;
        await waitFor('frames from the new tap', () => again.counters.framesSent > 10, 5000);
        assert.equal(rig.taps.pool.info()[0]!.restarts, 1);
        again.stop();
      } finally {
        await c.hangup();
      }
    } finally {
      await rig.close();
    }
  });

  test('admission control: the tap beyond taps.maxPerThread is refused with OVERLOADED (event and 503), the running taps carry on', async () => {
    const rig = await startRig({ taps: { threads: 1, maxPerThread: 2 } });
    try {
      const c = await placeCall(rig);
      try {
        const running = [0, 1].map((i) => rig.taps.start(c.gwCall.id, { url: server.url(`/ok${i}`), mix: 'mono', rate: 8000 }));
        await Promise.all(running.map((t) => t.ready));
        const sentBefore = running.map((t) => t.counters.framesSent);

        assert.throws(
          () => rig.taps.start(c.gwCall.id, { url: server.url('/third'), mix: 'mono', rate: 8000 }),
          (e: unknown) => e instanceof TapInputError && e.status === 503 && e.code === TapErrorCode.OVERLOADED && /maxPerThread/.test(e.message),
        );
        const refused = rig.events.filter((e) => e.name === 'error' && (e.body as { message: { code: number } }).message.code === TapErrorCode.OVERLOADED);
        assert.equal(refused.length, 1, 'one error event for the refused tap');
        assert.equal(refused[0]!.callId, c.gwCall.id);

        // the same through the HTTP API
        const res = await fetch(`http://127.0.0.1:${rig.gw.ports.http}/api/calls/${c.gwCall.id}/taps`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ url: server.url('/fourth'), mix: 'mono', rate: '8k' }),
        });
        assert.equal(res.status, 503);
        const body = (await res.json()) as { error: string; code: number; message: string };
        assert.equal(body.error, 'unavailable');
        assert.equal(body.code, TapErrorCode.OVERLOADED);

        // the two running taps were not touched; their jitter and the frame deviation are reported
        await sleep(500);
        running.forEach((t, i) => {
          assert.equal(t.state, 'connected');
          assert.ok(t.counters.framesSent >= sentBefore[i]! + 15, 'still streaming');
          assert.equal(t.counters.framesDropped, 0);
        });
        const listed = (await (await fetch(`http://127.0.0.1:${rig.gw.ports.http}/api/taps`)).json()) as { taps: { id: string; jitter: { ms: number; maxDeviationMs: number }; thread: number }[] };
        assert.equal(listed.taps.length, 2);
        for (const t of listed.taps) assert.ok(Number.isFinite(t.jitter.ms) && t.jitter.maxDeviationMs >= t.jitter.ms, JSON.stringify(t.jitter));
        const metrics = await (await fetch(`http://127.0.0.1:${rig.gw.ports.http}/metrics`)).text();
        const count = /gateway_tap_frame_deviation_seconds_count (\d+)/.exec(metrics);
        assert.ok(count && Number(count[1]) > 20, 'the frame deviation histogram counts the steps');
        assert.match(metrics, /gateway_tap_frame_deviation_seconds_bucket\{le="0.005"\} \d+/);

        // room again once a tap ends
        running[0]!.stop();
        await running[0]!.ended;
        const next = rig.taps.start(c.gwCall.id, { url: server.url('/after'), mix: 'mono', rate: 8000 });
        await next.ready;
        next.stop();
        running[1]!.stop();
      } finally {
        await c.hangup();
      }
    } finally {
      await rig.close();
    }
  });
});
