/**
 * Twilio Media Streams mode and the HTTP API of taps, on a real call.
 * Twilio: connected, start (mediaFormat mu-law 8000 mono, customParameters), media
 * (track, chunk, timestamp, payload), dtmf, mark echoed after playout, clear returning the
 * pending marks, stop. HTTP: start (JSON and mod_audio_stream's command), send_text, pause,
 * resume, stop with metadata, listing, and clear 4xx answers for bad input.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { decodeUlaw, encodeUlaw } from '../../server/audio/g711.js';
import { detectTone } from '../../server/audio/tone.js';
import { tapsRouter } from '../../server/http/taps-routes.js';
import { waitFor } from '../helpers/gateway.js';
import { sleep } from '../helpers/rtp-phone.js';
import { concat, placeCall, sineL16, startRig, type TapRig } from '../helpers/tap-call.js';
import { WsTapServer } from '../helpers/ws-tap-server.js';

describe('audio taps: Twilio Media Streams and the HTTP API', () => {
  let rig: TapRig;
  let server: WsTapServer;
  let api: http.Server;
  let base: string;

  before(async () => {
    rig = await startRig();
    server = await WsTapServer.start();
    const app = express();
    app.use(express.json({ limit: '256kb' }));
    app.use('/api', tapsRouter(rig.taps));
    // what the gateway's app must do too: a body that is not JSON is a 400, in the API's shape
    app.use((err: Error & { type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(err.type === 'entity.parse.failed' ? 400 : 500).json({ error: 'bad_request', message: err.message });
    });
    api = http.createServer(app);
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(api.address() as AddressInfo).port}/api`;
  });
  after(async () => {
    await new Promise<void>((r) => api.close(() => r()));
    await server.close();
    await rig.close();
  });

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  test('Twilio: connected, start, media, dtmf, mark, clear, stop', async () => {
    const c = await placeCall(rig, { callerTone: 440, calleeTone: null });
    try {
      const index = server.connections.length;
      const { status, json: tapJson } = await call('POST', `/calls/${c.gwCall.id}/taps`, { url: server.url('/twilio'), dialect: 'twilio', mix: 'mono', metadata: { agent: 'bot-7', lang: 'en' } });
      assert.equal(status, 201);
      const tapId = tapJson.id as string;
      const conn = await server.connection(index);
      await conn.until('media', () => conn.json.filter((m) => m.event === 'media').length >= 60, 5000);
      const [connected, start] = conn.json;
      assert.deepEqual(connected, { event: 'connected', protocol: 'Call', version: '1.0.0' });
      const s = start as { event: string; sequenceNumber: string; streamSid: string; start: Record<string, unknown> };
      assert.equal(s.event, 'start');
      assert.equal(s.sequenceNumber, '1');
      assert.match(s.streamSid, /^MZ[0-9a-f]{32}$/);
      assert.equal(s.start.streamSid, s.streamSid);
      assert.match(s.start.callSid as string, /^CA[0-9a-f]{32}$/);
      assert.match(s.start.accountSid as string, /^AC[0-9a-f]{32}$/);
      assert.deepEqual(s.start.tracks, ['inbound']);
      assert.deepEqual(s.start.mediaFormat, { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 });
      assert.deepEqual(s.start.customParameters, { agent: 'bot-7', lang: 'en' });

      const media = conn.json.filter((m) => m.event === 'media') as { sequenceNumber: string; streamSid: string; media: { track: string; chunk: string; timestamp: string; payload: string } }[];
      media.forEach((m, i) => {
        assert.equal(m.sequenceNumber, String(i + 2));
        assert.equal(m.streamSid, s.streamSid);
        assert.equal(m.media.track, 'inbound');
        assert.equal(m.media.chunk, String(i + 1));
        assert.equal(m.media.timestamp, String(i * 20));
        assert.equal(Buffer.from(m.media.payload, 'base64').length, 160);
      });
      const pcm = concat(media.slice(25).map((m) => decodeUlaw(Buffer.from(m.media.payload, 'base64'))));
      assert.ok(detectTone(pcm, 8000, 440, 10), 'the caller\'s 440 Hz in the inbound track');

      // dtmf from the caller
      await c.call.sendDtmf('7');
      const dtmf = await conn.until('dtmf', () => conn.json.find((m) => m.event === 'dtmf'), 3000);
      assert.deepEqual((dtmf as { dtmf: unknown }).dtmf, { track: 'inbound_track', digit: '7' });
      assert.equal((dtmf as { streamSid: string }).streamSid, s.streamSid);

      // media from the server, then a mark: heard, and the mark comes back after 1 s of audio
      const tone = encodeUlaw(new Int16Array(sineL16(1000, 8000, 1000).buffer.slice(0)));
      const t0 = performance.now();
      const since = Date.now();
      for (let k = 0; k < 50; k++) conn.sendJson({ event: 'media', streamSid: s.streamSid, media: { payload: Buffer.from(tone.subarray(k * 160, (k + 1) * 160)).toString('base64') } });
      conn.sendJson({ event: 'mark', streamSid: s.streamSid, mark: { name: 'greeting-done' } });
      const echoed = await conn.until('mark back', () => conn.messages.find((m) => m.text?.includes('greeting-done')), 3000);
      const markMs = echoed.at - t0;
      assert.ok(markMs > 950 && markMs < 1150, `mark after the 1 s of audio (${markMs.toFixed(0)} ms)`);
      const mk = JSON.parse(echoed.text!) as Record<string, unknown>;
      assert.equal(mk.event, 'mark');
      assert.equal(mk.streamSid, s.streamSid);
      assert.deepEqual(mk.mark, { name: 'greeting-done' });
      assert.ok(c.call.heardTone(1000, { since: since + 100, until: since + 950 }), 'alice heard the media');

      // clear: 5 s queued and a mark pending; the mark comes back at once, the audio stops
      for (let k = 0; k < 250; k++) conn.sendJson({ event: 'media', streamSid: s.streamSid, media: { payload: Buffer.from(tone.subarray((k % 50) * 160, ((k % 50) + 1) * 160)).toString('base64') } });
      conn.sendJson({ event: 'mark', streamSid: s.streamSid, mark: { name: 'never-played' } });
      await sleep(300);
      const tc = performance.now();
      conn.sendJson({ event: 'clear', streamSid: s.streamSid });
      const cleared = await conn.until('pending mark back', () => conn.messages.find((m) => m.text?.includes('never-played')), 1000);
      assert.ok(cleared.at - tc < 100, `pending mark returned on clear (${(cleared.at - tc).toFixed(0)} ms)`);
      const tap = rig.taps.get(tapId)!;
      const played = tap.counters.framesPlayed;
      await sleep(300);
      assert.ok(tap.counters.framesPlayed - played <= 1);

      // stop: the last message is stop, then a normal close
      const r = await call('POST', `/taps/${tapId}/stop`, {});
      assert.equal(r.status, 200);
      const closed = await conn.closed;
      assert.equal(closed.code, 1000);
      const last = conn.json.at(-1) as { event: string; sequenceNumber: string; stop: unknown; streamSid: string };
      assert.equal(last.event, 'stop');
      assert.deepEqual(last.stop, { accountSid: s.start.accountSid, callSid: s.start.callSid });
      const seqs = conn.json.filter((m) => m.sequenceNumber !== undefined).map((m) => Number(m.sequenceNumber));
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'sequence numbers 1, 2, 3... on every message after connected');
    } finally {
      await c.hangup();
    }
  });

  test('HTTP: start by command, send_text, pause, resume, stop with metadata, list; 4xx for bad input', async (t) => {
    const c = await placeCall(rig);
    try {
      await t.test('bad input', async () => {
        const bad: [string, unknown, number, RegExp][] = [
          ['/calls/nope/taps', { url: server.url() }, 404, /no call nope/],
          [`/calls/${c.gwCall.id}/taps`, { url: 'http://example.com/x' }, 400, /bad URL/],
          [`/calls/${c.gwCall.id}/taps`, { url: 'not a url' }, 400, /bad URL/],
          [`/calls/${c.gwCall.id}/taps`, {}, 400, /url is required/],
          [`/calls/${c.gwCall.id}/taps`, { url: server.url(), mix: 'surround' }, 400, /bad mix/],
          [`/calls/${c.gwCall.id}/taps`, { url: server.url(), rate: '44k' }, 400, /bad rate/],
          [`/calls/${c.gwCall.id}/taps`, { url: server.url(), bufferMs: 30 }, 400, /multiple of 20/],
          [`/calls/${c.gwCall.id}/taps`, { url: server.url(), dialect: 'sip' }, 400, /bad dialect/],
          [`/calls/${c.gwCall.id}/taps`, { url: server.url(), headers: { 'bad header': 'x' } }, 400, /bad header name/],
          [`/calls/${c.gwCall.id}/taps`, { command: 'start ws://127.0.0.1:1/x mono' }, 400, /usage: start/],
          [`/calls/${c.gwCall.id}/taps`, { command: 'explode' }, 400, /unknown command/],
          ['/taps/t0/stop', {}, 404, /no tap t0/],
        ];
        for (const [path, body, status, message] of bad) {
          const r = await call('POST', path, body);
          assert.equal(r.status, status, `${path} ${JSON.stringify(body)}`);
          assert.match(r.json.message as string, message);
          assert.equal(typeof r.json.error, 'string');
        }
        const r = await call('POST', `/calls/${c.gwCall.id}/taps`, '{not json');
        assert.equal(r.status, 400);
      });

      const index = server.connections.length;
      const started = await call('POST', `/calls/${c.gwCall.id}/taps`, { command: 'start ' + server.url('/cmd') + ' stereo 16k {"who": "mod_audio_stream", "n": 1}', heartbeatSec: 1, headers: { 'X-Api-Key': 'k1' } });
      assert.equal(started.status, 201, JSON.stringify(started.json));
      assert.equal(started.json.mix, 'stereo');
      assert.equal(started.json.rate, 16000);
      const tapId = started.json.id as string;
      const conn = await server.connection(index);
      assert.equal(conn.headers['x-api-key'], 'k1', 'extra HTTP headers on the upgrade');
      await conn.until('metadata', () => conn.messages.length > 0);
      assert.equal(conn.messages[0]!.text, '{"who": "mod_audio_stream", "n": 1}', 'the metadata as written, first');

      assert.equal((await call('POST', `/taps/${tapId}/send_text`, { text: 'hello server' })).status, 200);
      await conn.until('text', () => conn.texts.includes('hello server'));

      await conn.until('audio', () => conn.binaries.length > 10);
      assert.equal((await call('POST', `/taps/${tapId}/pause`)).json.state, 'paused');
      await sleep(100);
      const n = conn.binaries.length;
      await sleep(300);
      assert.equal(conn.binaries.length, n, 'nothing sent while paused');
      assert.equal((await call('POST', `/taps/${tapId}/resume`)).json.state, 'connected');
      await conn.until('audio again', () => conn.binaries.length > n + 5);
      for (const b of conn.binaries) assert.equal(b.data.length, 1280, 'stereo 16 kHz 20 ms');

      const list = await call('GET', '/taps');
      const mine = (list.json.taps as { id: string; state: string; counters: Record<string, number> }[]).find((x) => x.id === tapId)!;
      assert.equal(mine.state, 'connected');
      assert.ok(mine.counters.framesSent > 15);
      assert.equal(mine.counters.framesDropped, 0);
      const perCall = await call('GET', `/calls/${c.gwCall.id}/taps`);
      assert.equal((perCall.json.taps as unknown[]).length, 1);

      // uuid_audio_stream <uuid> stop <metadata>
      const stopped = await call('POST', `/calls/${c.gwCall.id}/taps`, { command: 'stop {"bye": true}' });
      assert.equal(stopped.status, 200);
      assert.equal((await conn.closed).code, 1000);
      assert.equal(conn.texts.at(-1), '{"bye": true}', 'the stop metadata is the last message');
      await waitFor('the tap to be gone', async () => (await call('GET', '/taps')).json.taps && ((await call('GET', '/taps')).json.taps as unknown[]).length === 0, 2000);
      // the thread's last events (stop, the socket's disconnect) come as messages: they may follow the tap's removal
      const events = (): string[] => rig.events.filter((e) => e.tapId === tapId).map((e) => e.name);
      await waitFor('the stop and disconnect events', () => events().includes('stop') && events().includes('disconnect'), 2000);
      assert.deepEqual(events().slice(0, 1), ['connect']);
    } finally {
      await c.hangup();
    }
  });

  test('a tap started before the answer waits for it; one on a call that never answers just ends', async () => {
    const gateway = `127.0.0.1:${rig.gw.ports.udp}`;
    const { RtpPhone } = await import('../helpers/rtp-phone.js');
    const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway, tone: 440 });
    const bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway, tone: 880, autoAnswer: { ringMs: 800 } });
    rig.phones.push(alice, bob);
    try {
      await alice.register();
      await bob.register();
      const before = new Set(rig.gw.calls.list().map((x) => x.id));
      const pc = alice.call('bob');
      await pc.ringing;
      const gwCall = await waitFor('the call', () => rig.gw.calls.list().find((x) => !before.has(x.id)), 2000);
      assert.notEqual(gwCall.state, 'answered');
      const index = server.connections.length;
      const tap = rig.taps.start(gwCall.id, { url: server.url('/early'), mix: 'mixed', rate: 8000 });
      assert.equal(tap.state, 'pending');
      await sleep(200);
      assert.equal(server.connections.length, index, 'no connection before the answer');
      await pc.answered;
      const conn = await server.connection(index, 3000);
      await conn.until('audio', () => conn.binaries.length > 20);
      await pc.hangup();
      assert.equal((await conn.closed).code, 1000);
      assert.equal(tap.state, 'stopped');

      // never answered: cancelled while ringing
      const pc2 = alice.call('bob');
      await pc2.ringing;
      const gwCall2 = await waitFor('the call', () => rig.gw.calls.list().find((x) => !before.has(x.id) && x.id !== gwCall.id), 2000);
      const tap2 = rig.taps.start(gwCall2.id, { url: server.url('/never') });
      await pc2.hangup();
      await waitFor('tap2 to end', () => tap2.state === 'stopped', 2000);
      assert.equal(tap2.endReason, 'call ended');
      assert.equal(server.connections.length, index + 1);
    } finally {
      await alice.unregister().catch(() => undefined);
      await bob.unregister().catch(() => undefined);
    }
  });
});
