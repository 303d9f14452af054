/**
 * Tap servers that misbehave: each is reported with its code (server/taps/errors.ts) and
 * none stalls the call's audio or the event loop. alice calls bob; a first tap plays into
 * alice (so her audio of bob goes through the tap's pipeline) and must stay gap-free while
 * other taps on the same call meet: a refused connection, a server that never answers, an
 * HTTP 403, a masked frame, an unknown extension, a server vanishing mid-frame, one that
 * never reads (frames dropped and counted, memory bounded), one silent to pings, garbage
 * JSON, 10 MB at once, TLS failures; and reconnection with backoff.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { TapErrorCode } from '../../server/taps/errors.js';
import type { Tap, TapEvent } from '../../server/taps/tap.js';
import { waitFor } from '../helpers/gateway.js';
import { sleep } from '../helpers/rtp-phone.js';
import { placeCall, rms, sineL16, startRig, toneShares, type TappedCall, type TapRig } from '../helpers/tap-call.js';
import { closedPort, RawServer, WsTapServer } from '../helpers/ws-tap-server.js';

describe('audio taps: misbehaving servers', () => {
  let rig: TapRig;
  let server: WsTapServer;
  let c: TappedCall;
  let player: Tap;
  const loop = monitorEventLoopDelay({ resolution: 5 });

  before(async () => {
    rig = await startRig();
    server = await WsTapServer.start();
    c = await placeCall(rig, { callerTone: 440, calleeTone: 880 });
    // a well-behaved tap playing a quiet tone into alice for the whole test: alice hears bob
    // through the tap's mix from now on
    const index = server.connections.length;
    player = rig.taps.start(c.gwCall.id, { url: server.url('/player'), playTo: 'caller' });
    const conn = await server.connection(index);
    await player.ready;
    conn.send(sineL16(300, 8000, 120_000, 2000));
    await waitFor('playing', () => player.counters.framesPlayed > 5, 3000);
    loop.enable();
  });

  after(async () => {
    loop.disable();
    await c.hangup();
    await server.close();
    await rig.close();
  });

  const errorsOf = (tap: Tap): { code: number; error: string; [k: string]: unknown }[] =>
    rig.events.filter((e: TapEvent) => e.tapId === tap.id && e.name === 'error').map((e) => (e.body as { message: { code: number; error: string } }).message);

  /**
   * The call's audio went on: since `since`, alice kept receiving the player tap's stream (a
   * packet every 20 ms, no hole longer than a few frames) and it was never silent (the
   * player's tone, with bob mixed in when his RTP reaches the tap). A stalled tap or event
   * loop would leave a hole; isolated late packets are the scheduling noise of one test
   * process being the server, the phones and the gateway on a shared 2-core machine.
   */
  function audioFlowed(since: number): void {
    const until = Date.now() - 60;
    const packets = c.call.receivedPackets.filter((p) => p.at >= since && p.at < until);
    const expected = (until - since) / 20;
    assert.ok(packets.length >= expected * 0.9, `${packets.length} packets for ${expected.toFixed(0)} frames`);
    let hole = 0;
    for (let i = 1; i < packets.length; i++) hole = Math.max(hole, packets[i]!.at - packets[i - 1]!.at);
    // alice's socket is read by this process: while its own event loop stalls (GC, a burst of
    // test work) packets wait in the kernel and look like a hole that the gateway never made
    const ownStall = loop.max / 1e6;
    assert.ok(hole < 120 + ownStall, `longest hole between packets ${hole} ms (this process stalled up to ${ownStall.toFixed(0)} ms)`);
    const heard = c.call.audio({ since, until });
    const frames = Math.floor(heard.length / 160);
    let silent = 0;
    for (let k = 0; k < frames; k++) if (rms(heard.subarray(k * 160, (k + 1) * 160)) < 500) silent++;
    assert.ok(silent <= Math.max(2, frames * 0.05), `${silent} of ${frames} frames silent`);
  }

  async function expectFailure(url: string, code: number, opts: Record<string, unknown> = {}): Promise<{ tap: Tap; errors: ReturnType<typeof errorsOf> }> {
    const since = Date.now();
    loop.reset();
    const tap = rig.taps.start(c.gwCall.id, { url, ...opts });
    await waitFor(`error ${code}`, () => errorsOf(tap).some((e) => e.code === code), 8000);
    await waitFor('the tap to end', () => tap.state === 'stopped', 8000);
    await sleep(300);
    audioFlowed(since);
    assert.ok(loop.max / 1e6 < 200, `event loop delay max ${(loop.max / 1e6).toFixed(1)} ms`);
    return { tap, errors: errorsOf(tap) };
  }

  test('refused: CONNECT_FAILED', async () => {
    const { errors } = await expectFailure(`ws://127.0.0.1:${await closedPort()}/x`, TapErrorCode.CONNECT_FAILED);
    assert.match(errors[0]!.error, /ECONNREFUSED/);
  });

  test('never answers the handshake: TIMEOUT', async () => {
    const raw = await RawServer.start('silent');
    try {
      await expectFailure(raw.url(), TapErrorCode.TIMEOUT, { handshakeTimeoutMs: 500 });
    } finally {
      await raw.close();
    }
  });

  test('HTTP 403 instead of 101: INVALID_HEADER with the status', async () => {
    const s = await WsTapServer.start({ rejectStatus: 403 });
    try {
      const { errors } = await expectFailure(s.url(), TapErrorCode.INVALID_HEADER);
      assert.equal(errors[0]!.http_status, 403);
    } finally {
      await s.close();
    }
  });

  test('a masked frame from the server: SERVER_MASKED', async () => {
    const raw = await RawServer.start('masked');
    try {
      await expectFailure(raw.url(), TapErrorCode.SERVER_MASKED);
    } finally {
      await raw.close();
    }
  });

  test('an extension nobody asked for: NOT_SUPPORTED', async () => {
    const raw = await RawServer.start('extension');
    try {
      await expectFailure(raw.url(), TapErrorCode.NOT_SUPPORTED);
    } finally {
      await raw.close();
    }
  });

  test('the server vanishes mid-frame: IO, disconnect 1006', async () => {
    const raw = await RawServer.start('mid-frame');
    try {
      const { tap } = await expectFailure(raw.url(), TapErrorCode.IO);
      const disc = rig.events.find((e) => e.tapId === tap.id && e.name === 'disconnect');
      assert.deepEqual(disc?.body, { status: 'disconnected', message: { code: 1006, reason: 'Abnormal closure' } });
    } finally {
      await raw.close();
    }
  });

  test('silent to pings: PING_TIMEOUT', async () => {
    const raw = await RawServer.start('no-read');
    try {
      await expectFailure(raw.url(), TapErrorCode.PING_TIMEOUT, { heartbeatSec: 0.3 });
    } finally {
      await raw.close();
    }
  });

  test('never reads: frames dropped and counted, SLOW_SERVER, memory bounded', async () => {
    const raw = await RawServer.start('no-read');
    try {
      const since = Date.now();
      loop.reset();
      const tap = rig.taps.start(c.gwCall.id, { url: raw.url(), mix: 'stereo', rate: 16000, maxBufferedBytes: 64 * 1024 });
      await tap.ready;
      // the kernel buffers ~4 MB for a socket nobody reads: a minute of this tap's audio. Fill
      // that at once (as if the server had stopped reading long ago): one 5 MB message
      // (send_text: a control message, sent whatever waits).
      assert.ok(tap.sendText('x'.repeat(5 * 1024 * 1024)));
      await waitFor('frames dropped', () => tap.counters.framesDropped > 20, 10_000);
      const slow = errorsOf(tap).find((e) => e.code === TapErrorCode.SLOW_SERVER);
      assert.ok(slow, 'SLOW_SERVER reported');
      const j = tap.toJSON() as { bufferedBytes: number; state: string };
      const dropped = tap.counters.framesDropped;
      await sleep(500);
      const j2 = tap.toJSON() as { bufferedBytes: number; state: string };
      assert.ok(j2.bufferedBytes <= j.bufferedBytes, `the send buffer does not grow (${j.bufferedBytes} -> ${j2.bufferedBytes} bytes)`);
      assert.ok(tap.counters.framesDropped >= dropped + 20, 'every frame since is dropped and counted');
      assert.equal(j2.state, 'connected', 'the tap itself carries on');
      audioFlowed(since);
      assert.ok(loop.max / 1e6 < 200, `event loop delay max ${(loop.max / 1e6).toFixed(1)} ms`);
      tap.stop();
    } finally {
      await raw.close();
    }
  });

  test('garbage JSON and odd text: json events, nothing breaks', async () => {
    const index = server.connections.length;
    const tap = rig.taps.start(c.gwCall.id, { url: server.url('/garbage'), rate: 16000 });
    const conn = await server.connection(index);
    await tap.ready;
    const since = Date.now();
    for (const t of ['{not json', '[1,2', 'null', '{"type":"streamAudio"}', '{"type":"streamAudio","data":{"audioDataType":"flac","audioData":"AAAA"}}', '{"type":"streamAudio","data":{"audioDataType":"raw","sampleRate":12345,"audioData":"AAAA"}}', '\u0000\u0001binary-ish']) conn.send(t);
    for (let i = 0; i < 500; i++) conn.send(`{"flood":${i}}`); // a flood of text
    await sleep(800);
    const json = rig.events.filter((e) => e.tapId === tap.id && e.name === 'json');
    assert.ok(json.some((e) => e.body === '{not json'), 'the raw text of an unparsable message');
    assert.ok(json.length <= 101 + 7, `json events are rate-limited (${json.length})`);
    assert.ok(tap.counters.eventsSuppressed > 300);
    const codes = errorsOf(tap).map((e) => e.code);
    assert.ok(codes.includes(TapErrorCode.BAD_MESSAGE), 'unplayable streamAudio reported');
    assert.equal(tap.state, 'connected');
    await conn.until('audio still sent', () => conn.binaries.length > 30);
    audioFlowed(since);
    tap.stop();
  });

  test('10 MB at once (binary, then streamAudio JSON): queued and paced, reading paused, no stall', async () => {
    const index = server.connections.length;
    const tap = rig.taps.start(c.gwCall.id, { url: server.url('/big'), rate: 16000, playTo: 'callee', pauseReadingAboveMs: 30_000 });
    const conn = await server.connection(index);
    await tap.ready;
    // built before the clock starts: in real life the server is another process
    const big = sineL16(1000, 16000, 10 * 1024 * 1024 / 32, 3000); // 10 MiB of 16 kHz L16: 327 s
    const bigJson = JSON.stringify({ type: 'streamAudio', data: { audioDataType: 'raw', sampleRate: 16000, audioData: big.subarray(0, 7.5 * 1024 * 1024).toString('base64') } });
    await sleep(200);
    const since = Date.now();
    loop.reset();
    conn.send(big);
    conn.send(bigJson);
    await waitFor('the big message queued', () => tap.counters.framesReceived >= 1, 10_000);
    await sleep(1500);
    const j = tap.toJSON() as { queuedMs: number; readingPaused: boolean };
    assert.ok(j.queuedMs > 300_000, `queued ${j.queuedMs} ms`);
    assert.ok(j.readingPaused, 'reading paused: the rest waits in TCP, not in memory');
    assert.ok(tap.counters.framesPlayed > 40, 'playing at real time');
    assert.ok(tap.counters.framesPlayed < 120, 'not faster than real time');
    assert.ok(loop.max / 1e6 < 200, `event loop delay max ${(loop.max / 1e6).toFixed(1)} ms`);
    audioFlowed(since);
    const [p1000] = toneShares(c.incoming.audio({ since: since + 500 }), 8000, [1000]);
    assert.ok(p1000! > 0.1, `bob hears the big file (share ${p1000})`);
    tap.stop();
  });

  test('reconnection with backoff: the metadata again on the new connection', async () => {
    let n = 0;
    let closeAll = false;
    const s = await WsTapServer.start({
      onConnection: (conn) => {
        if (++n <= 2 || closeAll) setTimeout(() => conn.ws.close(1011, 'restarting'), 100);
      },
    });
    try {
      const tap = rig.taps.start(c.gwCall.id, { url: s.url(), metadata: 'hello', reconnect: { minDelayMs: 50, maxDelayMs: 200 } });
      const third = await s.connection(2, 5000);
      await third.until('metadata', () => third.texts[0] === 'hello');
      // the tap's events come from its thread as messages: the third connect may trail the socket
      const names = await waitFor('3 connect events', () => {
        const list = rig.events.filter((e) => e.tapId === tap.id).map((e) => e.name);
        return list.filter((x) => x === 'connect').length === 3 ? list : null;
      });
      assert.deepEqual(names.filter((x) => x === 'connect').length, 3);
      assert.deepEqual(names.filter((x) => x === 'disconnect').length, 2);
      const d = rig.events.find((e) => e.tapId === tap.id && e.name === 'disconnect')!;
      assert.deepEqual(d.body, { status: 'disconnected', message: { code: 1011, reason: 'restarting' } });
      assert.equal(tap.state, 'connected');
      tap.stop();
      // without reconnection the server closing ends the tap
      closeAll = true;
      const t2 = rig.taps.start(c.gwCall.id, { url: s.url() });
      await waitFor('t2 to end', () => t2.state === 'stopped', 3000);
      assert.match(t2.endReason!, /server closed/);
    } finally {
      await s.close();
    }
  });

  test('TLS: CA file, hostname check, client certificate; failures classified', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tap-tls-'));
    const sh = (args: string[]): void => {
      execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    };
    try {
      sh(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tap test CA']);
      for (const who of ['server', 'client']) {
        sh(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? 'localhost' : 'tap client'}`]);
        fs.writeFileSync(path.join(dir, `${who}.ext`), who === 'server' ? 'subjectAltName=DNS:localhost\n' : 'extendedKeyUsage=clientAuth\n');
        sh(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '2', '-extfile', `${who}.ext`]);
      }
    } catch {
      t.skip('openssl is not available');
      return;
    }
    const f = (n: string): string => path.join(dir, n);
    const s = await WsTapServer.start({ tls: { cert: fs.readFileSync(f('server.pem')), key: fs.readFileSync(f('server.key')) } });
    try {
      const url127 = `wss://127.0.0.1:${s.port}/tls`;
      const urlLocal = `wss://localhost:${s.port}/tls`;
      await expectFailure(urlLocal, TapErrorCode.SSL_HANDSHAKE_FAILED); // unknown CA
      await expectFailure(url127, TapErrorCode.SSL_HANDSHAKE_FAILED, { tls: { caFile: f('ca.pem') } }); // names localhost, not 127.0.0.1
      await expectFailure(urlLocal, TapErrorCode.TLS_INIT_FAILED, { tls: { caFile: f('missing.pem') } });
      await expectFailure(urlLocal, TapErrorCode.TLS_INIT_FAILED, { tls: { caFile: f('ca.pem'), certFile: f('client.pem') } });
      for (const [url, tls] of [[urlLocal, { caFile: f('ca.pem') }], [url127, { caFile: f('ca.pem'), checkHostname: false }], [url127, { caFile: 'NONE' }]] as const) {
        const tap = rig.taps.start(c.gwCall.id, { url, tls });
        await tap.ready;
        tap.stop();
      }
    } finally {
      await s.close();
    }
    // a server that wants a client certificate
    const https = await import('node:https');
    const { WebSocketServer } = await import('ws');
    const hs = https.createServer({ cert: fs.readFileSync(f('server.pem')), key: fs.readFileSync(f('server.key')), ca: fs.readFileSync(f('ca.pem')), requestCert: true, rejectUnauthorized: true });
    const wss = new WebSocketServer({ server: hs });
    const subjects: string[] = [];
    wss.on('connection', (_ws, req) => subjects.push(String((req.socket as import('node:tls').TLSSocket).getPeerCertificate().subject.CN)));
    await new Promise<void>((r) => hs.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (hs.address() as import('node:net').AddressInfo).port;
      const tap = rig.taps.start(c.gwCall.id, { url: `wss://localhost:${port}/m`, tls: { caFile: f('ca.pem'), certFile: f('client.pem'), keyFile: f('client.key') } });
      await tap.ready;
      assert.deepEqual(subjects, ['tap client']);
      tap.stop();
      await expectFailure(`wss://localhost:${port}/m`, TapErrorCode.SSL_HANDSHAKE_FAILED, { tls: { caFile: f('ca.pem') } });
    } finally {
      wss.close();
      hs.closeAllConnections();
      await new Promise<void>((r) => hs.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('through it all, the player kept playing and alice kept hearing bob', () => {
    assert.equal(player.state, 'connected');
    assert.equal(player.counters.framesDropped, 0);
  });
});
