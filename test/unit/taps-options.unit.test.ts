/**
 * The taps' pure parts: start options and mod_audio_stream's command line, validated with
 * clear messages; every error code of the table documented in server/taps/errors.ts; socket
 * errors classified; the L16 framer's layouts; the shared clock's drift correction.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../../server/paths.js';
import { classifySocketError, TapErrorCode } from '../../server/taps/errors.js';
import { FrameClock } from '../../server/taps/frame-clock.js';
import { L16Framer } from '../../server/taps/l16-framer.js';
import { parseCommand, parseStartBody, TapInputError } from '../../server/taps/options.js';
import { redact } from '../../server/taps/redact.js';

test('start options: defaults, aliases, and 400s with a reason', () => {
  const o = parseStartBody({ url: 'wss://asr.example.com/stream?token=x', mix: 'STEREO', rate: '16k', metadata: { a: 1 }, heartbeat: '5', extraHeaders: '{"Authorization":"Bearer t"}' });
  assert.equal(o.url, 'wss://asr.example.com/stream?token=x');
  assert.equal(o.mix, 'stereo');
  assert.equal(o.rate, 16000);
  assert.equal(o.metadata, '{"a":1}');
  assert.equal(o.heartbeatSec, 5);
  assert.deepEqual(o.headers, { Authorization: 'Bearer t' });
  assert.equal(o.dialect, 'audio_stream');
  assert.equal(o.playTo, 'caller');
  const d = parseStartBody({ url: 'ws://h/x' });
  assert.equal(d.mix, 'mono');
  assert.equal(d.rate, 8000);
  const bad: [unknown, RegExp][] = [
    [{}, /url is required/],
    [{ url: 'ftp://h/x' }, /bad URL/],
    [{ url: 'ws://h/x', mix: 'quad' }, /bad mix/],
    [{ url: 'ws://h/x', rate: 44100 }, /bad rate/],
    [{ url: 'ws://h/x', bufferMs: 50 }, /multiple of 20/],
    [{ url: 'ws://h/x', bufferMs: 5000 }, /bufferMs must be/],
    [{ url: 'ws://h/x', playTo: 'everyone' }, /bad playTo/],
    [{ url: 'ws://h/x', headers: { 'X-A': 'line\r\nbreak' } }, /line break/],
    [{ url: 'ws://h/x', reconnect: 'sometimes' }, /reconnect must be true or false/],
    [{ url: 'ws://h/x', twilio: { tracks: 'sideways' } }, /twilio.tracks/],
    [[1, 2], /JSON object/],
  ];
  for (const [body, msg] of bad) {
    assert.throws(() => parseStartBody(body), (e: unknown) => e instanceof TapInputError && e.status === 400 && msg.test(e.message), JSON.stringify(body));
  }
});

test('mod_audio_stream commands', () => {
  const s = parseCommand('start ws://10.0.0.1:8080/asr mixed 16k {"lang": "en", "x": "a b"}', { deflate: true });
  assert.equal(s.action, 'start');
  if (s.action === 'start') {
    assert.equal(s.options.mix, 'mixed');
    assert.equal(s.options.rate, 16000);
    assert.equal(s.options.metadata, '{"lang": "en", "x": "a b"}');
    assert.equal(s.options.deflate, true);
  }
  assert.deepEqual(parseCommand('start ws://h/x mono 8000'), { action: 'start', options: parseStartBody({ url: 'ws://h/x', mix: 'mono', rate: 8000 }) });
  assert.deepEqual(parseCommand('stop'), { action: 'stop', metadata: null });
  assert.deepEqual(parseCommand('stop {"reason":"done"}'), { action: 'stop', metadata: '{"reason":"done"}' });
  assert.deepEqual(parseCommand('send_text hello there'), { action: 'send_text', text: 'hello there' });
  assert.deepEqual(parseCommand('PAUSE'), { action: 'pause' });
  assert.deepEqual(parseCommand('resume'), { action: 'resume' });
  for (const bad of ['', 'start ws://h/x', 'start ws://h/x mono 11k', 'send_text', 'launch']) assert.throws(() => parseCommand(bad), TapInputError);
});

test('every error code has its line in the documented table', () => {
  const src = fs.readFileSync(path.join(projectRoot, 'server', 'taps', 'errors.ts'), 'utf8');
  const table = src.slice(0, src.indexOf('*/'));
  for (const [name, code] of Object.entries(TapErrorCode)) {
    assert.match(table, new RegExp(`\\*\\s+${code} \\| ${name}\\s+\\|`), `${code} ${name} documented`);
  }
  const codes = Object.values(TapErrorCode);
  assert.equal(new Set(codes).size, codes.length, 'codes are unique');
});

test('socket errors are classified', () => {
  const e = (message: string, code?: string): Error & { code?: string } => Object.assign(new Error(message), code ? { code } : {});
  assert.equal(classifySocketError(e('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED'), false, false), TapErrorCode.CONNECT_FAILED);
  assert.equal(classifySocketError(e('getaddrinfo ENOTFOUND nope', 'ENOTFOUND'), false, true), TapErrorCode.CONNECT_FAILED);
  assert.equal(classifySocketError(e('Unexpected server response: 403'), false, false), TapErrorCode.INVALID_HEADER);
  assert.equal(classifySocketError(e('Invalid Sec-WebSocket-Accept header'), false, false), TapErrorCode.INVALID_HEADER);
  assert.equal(classifySocketError(e('Opening handshake has timed out'), false, false), TapErrorCode.TIMEOUT);
  assert.equal(classifySocketError(e('Server indicated an extension that was not requested'), false, false), TapErrorCode.NOT_SUPPORTED);
  assert.equal(classifySocketError(e('MASK must be clear', 'WS_ERR_UNEXPECTED_MASK'), true, false), TapErrorCode.SERVER_MASKED);
  assert.equal(classifySocketError(e('Invalid WebSocket frame: invalid opcode 3', 'WS_ERR_INVALID_OPCODE'), true, false), TapErrorCode.NOT_SUPPORTED);
  assert.equal(classifySocketError(e('Max payload size exceeded', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'), true, false), TapErrorCode.MESSAGE_TOO_BIG);
  assert.equal(classifySocketError(e('Invalid WebSocket frame: invalid UTF-8 sequence', 'WS_ERR_INVALID_UTF8'), true, false), TapErrorCode.PROTOCOL);
  assert.equal(classifySocketError(e('self-signed certificate', 'DEPTH_ZERO_SELF_SIGNED_CERT'), false, true), TapErrorCode.SSL_HANDSHAKE_FAILED);
  assert.equal(classifySocketError(e("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'), false, true), TapErrorCode.SSL_HANDSHAKE_FAILED);
  assert.equal(classifySocketError(e('read ECONNRESET', 'ECONNRESET'), true, false), TapErrorCode.IO);
});

test('L16 framer: mono, mixed (saturated), stereo (caller left), little endian, gathered per bufferMs', () => {
  const a = Int16Array.from({ length: 160 }, (_, i) => i * 100);
  const b = Int16Array.from({ length: 160 }, () => 30000);
  const mono = new L16Framer('mono', 8000, 20);
  assert.ok(mono.push(a, b));
  assert.equal(mono.message.length, 320);
  assert.equal(mono.message.readInt16LE(2), 100);
  const mixed = new L16Framer('mixed', 8000, 20);
  mixed.push(a, b);
  assert.equal(mixed.message.readInt16LE(0), 30000);
  assert.equal(mixed.message.readInt16LE(2 * 100), 32767, 'saturated, not wrapped');
  const stereo = new L16Framer('stereo', 8000, 60);
  assert.ok(!stereo.push(a, b));
  assert.ok(!stereo.push(a, b));
  assert.ok(stereo.push(a, b));
  assert.equal(stereo.message.length, 160 * 2 * 2 * 3);
  assert.equal(stereo.message.readInt16LE(4), 100);
  assert.equal(stereo.message.readInt16LE(6), 30000);
});

test('the shared clock: one timer for many subscribers, ticks every 20 ms without drift', async () => {
  const clock = new FrameClock();
  const seen: number[][] = [[], [], []];
  const subs = seen.map((list) => ({ tick: (n: number) => void list.push(n), afterTick: () => {} }));
  const t0 = performance.now();
  for (const s of subs) clock.add(s);
  await new Promise((r) => setTimeout(r, 1010));
  for (const s of subs) clock.delete(s);
  const elapsed = performance.now() - t0;
  for (const list of seen) {
    assert.deepEqual(list, list.map((_, i) => i + 1), 'every tick once, in order');
    assert.ok(Math.abs(list.length - elapsed / 20) <= 2, `${list.length} ticks in ${elapsed.toFixed(0)} ms`);
  }
  assert.equal(clock.size, 0);
});

test('URLs in listings lose their credentials and query', () => {
  assert.equal(redact('wss://user:pass@asr.example.com/s?token=secret'), 'wss://asr.example.com/s?%E2%80%A6');
  assert.equal(redact('ws://h/x'), 'ws://h/x');
});
