/**
 * The gateway's doors against strangers (issue 10), tested from a real "public" source: a
 * network namespace made by the test (test/helpers/netns.ts, 198.18.0.0/15) besides loopback
 * for the machine itself. The untokened API, WebSocket Origin / Host / caps / idle close, the
 * token in the query string, the event stream's cap and slow readers, and flood and
 * password-guessing bans, each next to the legitimate path still working.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { DEMO_USERS } from '../../server/config/schema.js';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { createNetns, netnsUnavailable, type Netns } from '../helpers/netns.js';
import { RtpPhone } from '../helpers/rtp-phone.js';

const ATTACKER = 'dist/test/helpers/sip-attacker.js';
const TOKEN = 'edge-test-token-0123456789';
const skipNetns = netnsUnavailable();

/** Runs the attacker command line inside the namespace; its JSON line. */
async function outsider<T = Record<string, unknown>>(ns: Netns, args: string[], timeoutMs = 60_000): Promise<T> {
  const r = await ns.node([ATTACKER, ...args], timeoutMs);
  if (r.code !== 0) throw new Error(`sip-attacker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

/** A plain GET with the headers we choose (Host included). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      if ((res.headers['content-type'] ?? '').includes('event-stream')) {
        resolve({ status: res.statusCode ?? 0, body: '' });
        res.destroy();
        return;
      }
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

/** Opens a SIP WebSocket; the HTTP status of the upgrade (101 when open) and the socket. */
function openWs(port: number, opts: { origin?: string; host?: string } = {}): Promise<{ status: number; ws: WebSocket | null }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = opts.host ? { host: opts.host } : {};
    const ws = new WebSocket(`ws://127.0.0.1:${port}/sip`, 'sip', { ...(opts.origin ? { origin: opts.origin } : {}), headers });
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, ws: null });
      ws.terminate();
    });
    ws.on('error', reject);
  });
}

const closed = (ws: WebSocket): Promise<number> => new Promise((r) => (ws.readyState === ws.CLOSED ? r(-1) : ws.once('close', (code) => r(code))));

describe('edge security from a public source', { skip: skipNetns ?? false }, () => {
  let ns: Netns;
  before(async () => {
    ns = await createNetns();
  });
  after(async () => {
    await ns?.close();
  });

  test('the untokened API answers this machine and refuses a public source', async () => {
    const gw = await startTestGateway({ http: { address: '0.0.0.0' }, users: DEMO_USERS.map((u) => ({ ...u })) });
    try {
      const local = await get(gw.ports.http, '/api/calls');
      assert.equal(local.status, 200);
      const outside = await outsider<{ status: number }>(ns, ['http', `http://${ns.hostAddress}:${gw.ports.http}/api/calls`]);
      assert.equal(outside.status, 401, 'a public source gets what a missing token gets');
      const users = await outsider<{ status: number }>(ns, ['http', `http://${ns.hostAddress}:${gw.ports.http}/api/users`]);
      assert.equal(users.status, 401);
      const health = await outsider<{ status: number }>(ns, ['http', `http://${ns.hostAddress}:${gw.ports.http}/healthz`]);
      assert.equal(health.status, 200, 'health stays open');
    } finally {
      await gw.close();
    }
  });

  test('the demo accounts answer this machine only: from a public source the right password gets a wrong password\'s 403', async () => {
    const gw = await startTestGateway({ sip: { trustedPeers: [], udp: { address: '0.0.0.0', port: 0 } }, users: DEMO_USERS.map((u) => ({ ...u })) });
    const local = await RtpPhone.start({ user: '1001', password: 'secret1001', gateway: `127.0.0.1:${gw.ports.udp}`, tone: 440 });
    try {
      assert.equal((await local.register()).status, 200, 'from loopback: registered');
      const right = await outsider<{ status: number }>(ns, ['register', ns.hostAddress, String(gw.ports.udp), '1000', 'secret1000']);
      const wrong = await outsider<{ status: number }>(ns, ['register', ns.hostAddress, String(gw.ports.udp), '1000', 'not-it']);
      assert.equal(right.status, 403);
      assert.deepEqual(right, wrong);
      assert.deepEqual(await gw.registrar.store.get('1000'), []);
      // and no call as a demo user either: the 407 of route[AUTH], then a 403 for the right password
      const call = await outsider<{ status: number }>(ns, ['invite', ns.hostAddress, String(gw.ports.udp), '1000', '1001', 'secret1000']);
      assert.equal(call.status, 403);
      assert.equal(local.calls.length, 0, '1001 never rang');
    } finally {
      await local.close();
      await gw.close();
    }
  });

  test('WebSocket connections per source are capped; another source still connects', async () => {
    const gw = await startTestGateway({ sip: { trustedPeers: [] }, http: { address: '0.0.0.0', wsMaxPerSource: 2 }, users: DEMO_USERS.map((u) => ({ ...u })) });
    const open: WebSocket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const r = await openWs(gw.ports.http);
        assert.equal(r.status, 101);
        open.push(r.ws!);
      }
      assert.equal((await openWs(gw.ports.http)).status, 503, 'the third from 127.0.0.1');
      const other = await outsider<{ status: number }>(ns, ['ws', `ws://${ns.hostAddress}:${gw.ports.http}/sip`]);
      assert.equal(other.status, 101, 'another address is not counted against this one');
      open.pop()!.close();
      await waitFor('a slot to free up', async () => (await openWs(gw.ports.http).then((r) => { if (r.ws) open.push(r.ws); return r.status; })) === 101);
    } finally {
      for (const ws of open) ws.terminate();
      await gw.close();
    }
  });

  test('a flooding source is banned and ignored while a user on this machine keeps registering', async () => {
    const gw = await startTestGateway({ sip: { udp: { address: '0.0.0.0', port: 0 } }, security: { floodMaxMessages: 100, banTime: 120 } });
    const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway: `127.0.0.1:${gw.ports.udp}`, tone: 440 });
    try {
      assert.equal((await alice.register()).status, 200);
      const sweep = await outsider<{ sent: number; replies: number; probeReplies: number }>(ns, ['options', ns.hostAddress, String(gw.ports.udp), '2000']);
      assert.ok(sweep.replies > 0, 'the gateway answered at first');
      assert.ok(sweep.replies <= 100, `at most floodMaxMessages answered, got ${sweep.replies}`);
      assert.equal(sweep.probeReplies, 0, 'then nothing: the source is banned, silently');
      assert.deepEqual(gw.guard.listBans().map((b) => [b.address, b.reason]), [[ns.address, 'flood']]);
      for (let i = 0; i < 3; i++) assert.equal((await alice.register()).status, 200, 'loopback keeps registering');
    } finally {
      await alice.close();
      await gw.close();
    }
  });

  test('a password-guessing source is banned after maxAuthFailures; the right password still works from here', async () => {
    const gw = await startTestGateway({ sip: { udp: { address: '0.0.0.0', port: 0 } }, security: { maxAuthFailures: 5, banTime: 120 } });
    const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway: `127.0.0.1:${gw.ports.udp}`, tone: 440 });
    try {
      const r = await outsider<{ attempts: number; statuses: Record<string, number>; unanswered: number; firstUnanswered: number }>(
        ns, ['guess', ns.hostAddress, String(gw.ports.udp), 'alice', '30']);
      assert.ok(r.firstUnanswered >= 0, `the guesses stop being answered: ${JSON.stringify(r)}`);
      assert.ok(r.firstUnanswered <= 5, `within maxAuthFailures guesses: ${JSON.stringify(r)}`);
      assert.equal(gw.guard.isBanned(ns.address), true);
      assert.equal((await alice.register()).status, 200);
    } finally {
      await alice.close();
      await gw.close();
    }
  });
});

describe('edge security on loopback', () => {
  let gw: Gateway;
  before(async () => {
    gw = await startTestGateway({
      http: { apiToken: TOKEN, allowedHosts: ['gw.example.com'], allowedOrigins: ['https://app.example.com'], maxEventSubscribers: 2, eventMaxBuffered: 1024 },
    });
  });
  after(async () => {
    await gw?.close();
  });

  test('the SIP WebSocket refuses pages from elsewhere; same host, listed origins and no Origin pass', async () => {
    const port = gw.ports.http;
    assert.equal((await openWs(port, { origin: 'http://evil.example' })).status, 403);
    const ok = [await openWs(port, { origin: `http://127.0.0.1:${port}` }), await openWs(port, { origin: 'https://app.example.com' }), await openWs(port)];
    assert.deepEqual(ok.map((r) => r.status), [101, 101, 101], 'same host, a listed origin, and no Origin (phones)');
    for (const r of ok) r.ws!.close();
  });

  test('Host must be one of http.allowedHosts (DNS rebinding), for pages, the API and the WebSocket', async () => {
    const port = gw.ports.http;
    assert.equal((await get(port, '/', { host: 'evil.example' })).status, 421);
    assert.equal((await get(port, '/api/calls', { host: `evil.example:${port}`, authorization: `Bearer ${TOKEN}` })).status, 421);
    assert.equal((await openWs(port, { host: `evil.example:${port}`, origin: `http://evil.example:${port}` })).status, 421);
    assert.equal((await get(port, '/api/calls', { host: `gw.example.com:${port}`, authorization: `Bearer ${TOKEN}` })).status, 200);
    assert.equal((await get(port, '/healthz')).status, 200, 'an IP literal passes');
  });

  test('?token= opens the event stream only; the token is checked exactly', async () => {
    const port = gw.ports.http;
    assert.equal((await get(port, `/api/calls?token=${TOKEN}`)).status, 401);
    assert.equal((await get(port, '/api/calls', { authorization: `Bearer ${TOKEN}` })).status, 200);
    assert.equal((await get(port, '/api/calls', { authorization: `Bearer ${TOKEN}x` })).status, 401);
    assert.equal((await get(port, `/api/events?token=${TOKEN}`)).status, 200);
    assert.equal((await get(port, `/api/events?token=${TOKEN.slice(0, -1)}`)).status, 401);
  });

  test('event subscribers are capped, and one that stops reading is dropped', async () => {
    const port = gw.ports.http;
    await waitFor('no subscriber left', () => gw.bus.listenerCount('event') === 0);
    const streams: http.ClientRequest[] = [];
    const subscribe = (): Promise<number> => new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/events', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => resolve(res.statusCode ?? 0));
      req.on('error', reject);
      streams.push(req);
    });
    try {
      assert.equal(await subscribe(), 200);
      assert.equal(await subscribe(), 200);
      assert.equal(await subscribe(), 503, 'the third, with maxEventSubscribers 2');
      for (const s of streams) s.destroy();
      await waitFor('the streams to close', () => gw.bus.listenerCount('event') === 0);

      // a reader that never reads: the kernel's buffers fill, then ours, then it is dropped
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
      sock.pause();
      await waitFor('the subscription', () => gw.bus.listenerCount('event') === 1);
      const gone = new Promise((r) => sock.once('close', r));
      const big = 'x'.repeat(4096);
      await waitFor('the slow reader to be dropped', async () => {
        for (let i = 0; i < 200; i++) gw.bus.publish('test.flood', { big });
        await new Promise((r) => setTimeout(r, 10));
        return gw.bus.listenerCount('event') === 0;
      }, 20_000);
      sock.destroy();
      await gone;
      assert.equal(await subscribe(), 200, 'a new subscriber is welcome');
    } finally {
      for (const s of streams) s.destroy();
    }
  });
});

describe('idle SIP WebSockets', () => {
  test('a connection that sends no SIP request is closed; one that registers stays', async () => {
    const gw = await startTestGateway({ http: { wsIdleTimeout: 1 } });
    try {
      const quiet = await openWs(gw.ports.http);
      const busy = await openWs(gw.ports.http);
      busy.ws!.send([
        'REGISTER sip:127.0.0.1 SIP/2.0',
        'Via: SIP/2.0/WS x.invalid;branch=z9hG4bK-idle1',
        'Max-Forwards: 70',
        'From: <sip:alice@127.0.0.1>;tag=a1',
        'To: <sip:alice@127.0.0.1>',
        'Call-ID: idle-test-1',
        'CSeq: 1 REGISTER',
        'Contact: <sip:alice@x.invalid;transport=ws>',
        'Content-Length: 0',
        '', '',
      ].join('\r\n'));
      assert.equal(await closed(quiet.ws!), 1008, 'closed with "policy violation"');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(busy.ws!.readyState, WebSocket.OPEN, 'the registering client stays connected');
      busy.ws!.close();
    } finally {
      await gw.close();
    }
  });
});

describe('the total WebSocket cap', () => {
  test('beyond http.wsMaxConnections an upgrade gets 503, even from a trusted address; a closed one frees a place', async () => {
    const gw = await startTestGateway({ http: { wsMaxConnections: 2 } });
    const open: WebSocket[] = [];
    try {
      for (let i = 0; i < 2; i++) open.push((await openWs(gw.ports.http)).ws!);
      assert.equal((await openWs(gw.ports.http)).status, 503);
      open.shift()!.close();
      await waitFor('a place to free up', async () => {
        const r = await openWs(gw.ports.http);
        if (r.ws) open.push(r.ws);
        return r.status === 101;
      });
    } finally {
      for (const ws of open) ws.terminate();
      await gw.close();
    }
  });
});
