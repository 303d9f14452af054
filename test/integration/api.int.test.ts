/**
 * The gateway as an operator runs it: `node dist/server/main.js --config FILE` from a config
 * in a temp dir. Every API route with and without the token, the event stream for a
 * registration and a call, /metrics, a config typo refusing to start, SIGTERM draining.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { projectRoot } from '../../server/paths.js';
import { waitFor } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { RtpPhone } from '../helpers/rtp-phone.js';

const TOKEN = 'test-token-1234';
const main = path.join(projectRoot, 'dist', 'server', 'main.js');

function writeConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, 'gateway.json');
  fs.writeFileSync(file, JSON.stringify({
    sip: { advertise: '127.0.0.1', udp: { address: '127.0.0.1', port: 0 } },
    http: { address: '127.0.0.1', port: 0, apiToken: TOKEN },
    registrar: { store: { type: 'file', path: path.join(dir, 'location.jsonl') } },
    // the media check reads each leg every 15th interval (5th with a prebuilt worker): at
    // 300 ms the call's bytes reach /metrics within seconds
    media: { listenAddress: '127.0.0.1', workers: 1, minPort: 43000, maxPort: 43199, checkInterval: 300 },
    users: [{ username: 'alice', password: 'pw-alice', displayName: 'Alice' }, { username: 'bob', password: 'pw-bob' }],
    shutdown: { grace: 2 },
    log: { level: 'info', pretty: false },
    ...extra,
  }));
  return file;
}


async function api(port: number, method: string, route: string, opts: { token?: string | null; body?: unknown; raw?: string } = {}): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`;
  if (opts.body !== undefined || opts.raw !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { method, headers, ...(opts.raw !== undefined ? { body: opts.raw } : opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, json };
}

/** Reads the SSE stream into a list of events. */
function subscribe(port: number, query: string): { events: { id: number; type: string; data: any }[]; close: () => void } {
  const events: { id: number; type: string; data: any }[] = [];
  const req = http.get(`http://127.0.0.1:${port}/api/events?${query}`, (res) => {
    let buf = '';
    res.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split('\n').find((l) => l.startsWith('data: '));
        if (data) {
          const e = JSON.parse(data.slice(6)) as { id: number; type: string; data: any };
          events.push(e);
        }
      }
    });
  });
  req.on('error', () => {});
  return { events, close: () => req.destroy() };
}

describe('the gateway process: API, events, metrics, shutdown', () => {
  let dir: string;
  let gw: GatewayProcess;
  let alice: RtpPhone;
  let bob: RtpPhone;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-api-'));
    gw = await startGatewayProcess(writeConfig(dir));
    alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway: `127.0.0.1:${gw.udp}`, tone: 440 });
    bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway: `127.0.0.1:${gw.udp}`, tone: 880, autoAnswer: { ringMs: 0 } });
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    if (gw && gw.child.exitCode === null) gw.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('health and readiness need no token; the API does', async () => {
    assert.equal((await api(gw.http, 'GET', '/healthz', { token: null })).status, 200);
    assert.deepEqual((await api(gw.http, 'GET', '/readyz', { token: null })).json, { ready: true });
    for (const route of ['/api/registrations', '/api/calls', '/api/users', '/api/taps', '/api/events']) {
      const r = await api(gw.http, 'GET', route, { token: null });
      assert.equal(r.status, 401, route);
      assert.equal(r.json.error, 'unauthorized');
    }
    assert.equal((await api(gw.http, 'GET', '/api/calls', { token: 'wrong' })).status, 401);
    const users = await api(gw.http, 'GET', '/api/users');
    assert.deepEqual(users.json, { users: [{ username: 'alice', displayName: 'Alice' }, { username: 'bob' }] });
    assert.ok(!JSON.stringify(users.json).includes('pw-'), 'no password in the API');
    const taps = await api(gw.http, 'GET', '/api/taps');
    assert.equal(taps.status, 200);
    assert.deepEqual(taps.json.taps, []);
    assert.equal((await api(gw.http, 'POST', '/api/calls/nope/taps', { body: { url: 'ws://127.0.0.1:9/', mix: 'mono', rate: '8k' } })).status, 404);
    const missing = await api(gw.http, 'GET', '/api/nothing');
    assert.equal(missing.status, 404);
    assert.equal((await api(gw.http, 'POST', '/api/calls/x/taps', { raw: '{not json' })).status, 400);
  });

  test('a registration and a call: events on the stream, the API lists them, hangs up the call', async () => {
    const stream = subscribe(gw.http, `token=${TOKEN}&types=registration,call`);
    await new Promise((r) => setTimeout(r, 100));
    await alice.register();
    await bob.register();
    await waitFor('registration events', () => stream.events.filter((e) => e.type === 'registration.added').length >= 2);
    const regs = await api(gw.http, 'GET', '/api/registrations');
    assert.deepEqual(regs.json.registrations.map((r: { aor: string }) => r.aor).sort(), ['alice', 'bob']);
    assert.equal((await api(gw.http, 'GET', '/api/registrations/alice')).json.registrations.length, 1);

    const call = alice.call('bob');
    await call.answered;
    const incoming = await bob.nextIncoming();
    await waitFor('audio', () => incoming.heardTone(440));
    const calls = await api(gw.http, 'GET', '/api/calls');
    assert.equal(calls.json.calls.length, 1);
    const c = calls.json.calls[0];
    assert.equal(c.state, 'answered');
    assert.equal(c.media.caller.codec, 'PCMU');
    assert.ok(c.media.caller.packetsReceived > 0, 'per-leg packet counters');
    await waitFor('media bytes counted', async () => /gateway_media_bytes_total\{direction="received"\} [1-9]/.test((await api(gw.http, 'GET', '/metrics', { token: null })).json as string));
    const one = await api(gw.http, 'GET', `/api/calls/${c.id}`);
    assert.equal(one.json.id, c.id);
    assert.equal((await api(gw.http, 'GET', '/api/calls/nope')).status, 404);
    assert.equal((await api(gw.http, 'DELETE', `/api/calls/${c.id}`)).status, 200);
    await Promise.all([call.waitEnded(5000), incoming.waitEnded(5000)]);
    await waitFor('call events', () => stream.events.some((e) => e.type === 'call.ended'));
    const types = stream.events.map((e) => e.type);
    assert.ok(types.includes('call.started') && types.includes('call.answered'), types.join(', '));
    assert.equal(stream.events.find((e) => e.type === 'call.ended')!.data.reason, 'ended by the API');
    stream.close();
    // a subscriber that reconnects (Last-Event-ID, here ?since=) is given what it missed, in order
    const seen = stream.events;
    const again = subscribe(gw.http, `token=${TOKEN}&types=registration,call&since=${seen[0]!.id}`);
    await waitFor('the missed events again', () => again.events.length >= seen.length - 1);
    again.close();
    assert.deepEqual(again.events.slice(0, seen.length - 1).map((e) => e.id), seen.slice(1).map((e) => e.id));

    assert.equal((await api(gw.http, 'DELETE', '/api/registrations/alice')).json.removed, 1);
    assert.equal((await api(gw.http, 'GET', '/api/registrations/alice')).json.registrations.length, 0);
    assert.equal((await api(gw.http, 'DELETE', '/api/registrations/alice')).status, 404);
  });

  test('/metrics: registrations, calls by status, SIP traffic, media, workers', async () => {
    const m = (await api(gw.http, 'GET', '/metrics', { token: null })).json as string;
    assert.match(m, /^gateway_registrations 1$/m);
    assert.match(m, /^gateway_calls_active 0$/m);
    assert.match(m, /^gateway_call_attempts_total\{status="200"\} 1$/m);
    assert.match(m, /^gateway_sip_messages_total\{kind="received"\} \d+$/m);
    assert.match(m, /^gateway_media_bytes_total\{direction="received"\} \d+$/m);
    assert.match(m, /^gateway_media_worker_cpu_seconds\{pid="\d+",mode="user"\} /m);
    assert.match(m, /^gateway_node_process_cpu_seconds_total /m);
  });

  test('SIGTERM: new calls get 503, a call up is hung up after the grace, the process exits 0', async () => {
    await alice.register();
    const call = bob.call('alice');
    // alice does not auto-answer: answer by hand
    const incoming = await alice.nextIncoming();
    incoming.answer();
    await call.answered;
    gw.child.kill('SIGTERM');
    await waitFor('not ready', async () => (await api(gw.http, 'GET', '/readyz', { token: null }).catch(() => ({ status: 0 }))).status === 503);
    const refused = alice.call('bob');
    await assert.rejects(refused.answered, (e: Error & { status?: number }) => e.status === 503);
    await Promise.all([call.waitEnded(8000), incoming.waitEnded(8000)]);
    const code = await new Promise<number | null>((r) => (gw.child.exitCode !== null ? r(gw.child.exitCode) : gw.child.once('exit', (c) => r(c))));
    assert.equal(code, 0, gw.output().slice(-2000));
    assert.match(fs.readFileSync(path.join(dir, 'location.jsonl'), 'utf8'), /"a":"bob"/, 'registrations are kept for the next start');
  });
});

test('a config with a typo stops start-up, naming the key', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-typo-'));
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(file, 'sip:\n  udp: { address: 127.0.0.1, prot: 5060 }\nhttp:\n  port: eighty\n');
  const child = spawn(process.execPath, [main, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 2);
  assert.match(err, /sip\.udp\.prot: unknown key \(expected one of: address, port\)/);
  assert.match(err, /http\.port: expected integer, got "eighty"/);
});
