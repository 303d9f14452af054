/**
 * Taps and wsbridge asked for in SIP are no way into the gateway's network (issue 10, SSRF):
 * through the gateway as it runs, with a TCP listener on 127.0.0.1 that must never be
 * reached, a tap server that trusted callers may use, and stub DNS (no test asks a real
 * resolver). A request is trusted here when it carries `X-Test-Trusted: yes` (what the core's
 * authentication decides in production; trustingScript stands in for it).
 *   - untrusted callers: X-Audio-Stream and wsbridge open nothing, to any URL;
 *   - trusted callers: only URLs of taps.allowedUrls; a name matched by a wildcard that
 *     resolves to an internal address is refused; the address checked is the one connected
 *     to (one lookup);
 *   - every wsbridge failure is the same plain 503 (no Warning: no port-scan oracle);
 *   - the API, with the operator's token, still taps to loopback servers; TLS files named in
 *     a request are refused without saying whether they exist.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { detectTone } from '../../server/audio/tone.js';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { registeredPair, sleep, SipStatusError, type PhoneCall, type RtpPhone } from '../helpers/rtp-phone.js';
import { concat, l16 } from '../helpers/tap-call.js';
import { trustingScript } from '../helpers/trusted-script.js';
import { WsTapServer } from '../helpers/ws-tap-server.js';
import { stubDns } from '../helpers/stub-dns.js';

const TOKEN = 'ssrf-test-token';
const TRUSTED: [string, string] = ['X-Test-Trusted', 'yes'];

/** A TCP listener that counts every connection made to it (and closes them). */
async function trap(): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, count: () => n, close: () => new Promise((r) => server.close(() => r())) };
}


async function rejection(call: PhoneCall): Promise<SipStatusError> {
  try {
    await call.answered;
  } catch (e) {
    assert.ok(e instanceof SipStatusError, String(e));
    return e;
  }
  throw new Error('the call was answered');
}

describe('taps from SIP: only for the trusted, only to allowed URLs', () => {
  let gw: Gateway;
  let server: WsTapServer;
  let forbidden: Awaited<ReturnType<typeof trap>>;
  let alice: RtpPhone;
  let bob: RtpPhone;
  const dns = stubDns({ 'named.example.com': ['127.0.0.1', '127.0.0.2'], 'api.example.com': ['127.0.0.1'], 'rebind.example.com': ['127.0.0.1'], 'meta.example.com': ['169.254.169.254'] });

  before(async () => {
    server = await WsTapServer.start();
    forbidden = await trap();
    const P = server.port;
    gw = await startTestGateway({
      media: { minPort: 39400, maxPort: 39599 },
      http: { apiToken: TOKEN },
      taps: {
        allowedUrls: [
          `ws://127.0.0.1:${P}/ok`, // an IP literal, exactly: internal addresses are the operator's to name
          `ws://named.example.com:${P}/`, // an exact name
          `ws://*.example.com:${forbidden.port}/`, // names under example.com: public addresses only
          'ws://127.0.0.1:1/', // allowed, but nothing listens there
        ],
      },
    }, {
      script: trustingScript((sip) => sip.req.get('x-test-trusted') === 'yes'),
      tapLookup: { system: dns, caller: dns },
    });
    ({ alice, bob } = await registeredPair(`127.0.0.1:${gw.ports.udp}`));
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await server?.close();
    await forbidden?.close();
    await gw?.close();
  });

  test('X-Audio-Stream: untrusted callers open nothing (allowed URL or not); a trusted one gets the allowed tap and its audio', async () => {
    const before = server.connections.length;
    const untrusted = [
      alice.call('bob', { headers: [['X-Audio-Stream', `start ws://127.0.0.1:${forbidden.port}/x mono 8k`]] }),
      alice.call('bob', { headers: [['X-Audio-Stream', `start ${server.url('/ok/untrusted')} mono 8k`]] }),
      // trusted, but to a URL no entry allows
      alice.call('bob', { headers: [TRUSTED, ['X-Audio-Stream', `start ws://127.0.0.1:${forbidden.port}/x mono 8k`]] }),
    ];
    for (const c of untrusted) await c.answered; // the calls themselves go on
    // then a trusted caller to an allowed URL: its tap is the only connection made
    const ok = alice.call('bob', { headers: [TRUSTED, ['X-Audio-Stream', `start ${server.url('/ok/trusted')} mono 8k`]] });
    await ok.answered;
    const conn = await server.connection(before);
    assert.equal(conn.path, '/ok/trusted');
    await conn.until('a second of audio', () => conn.binaries.length >= 50);
    assert.ok(detectTone(concat(conn.binaries.slice(10, 50).map((b) => l16(b.data))), 8000, 440, 15), 'the caller\'s tone arrives');
    await sleep(300); // anything refused would have connected by now
    assert.equal(server.connections.length, before + 1, 'one connection: the trusted, allowed one');
    assert.equal(forbidden.count(), 0, 'nothing reached the loopback listener');
    assert.equal(gw.taps.size, 1);
    for (const c of [...untrusted, ok]) await c.hangup();
    await waitFor('the tap to end with its call', () => gw.taps.size === 0);
  });

  test('wsbridge: untrusted, not allowed, or allowed but unreachable: the same plain 503, nothing connects', async () => {
    const uri = (u: string): [string, string] => ['P-wsbridge-websocket-uri', encodeURIComponent(u)];
    const before = server.connections.length;
    const failures = [];
    for (const headers of [
      [uri(`ws://127.0.0.1:${forbidden.port}/bridge`)], // untrusted
      [uri(server.url('/ok/bridge'))], // untrusted, allowed URL
      [TRUSTED, uri(`ws://127.0.0.1:${forbidden.port}/bridge`)], // trusted, not allowed
      [TRUSTED, uri('ws://127.0.0.1:1/none')], // trusted, allowed, connection refused
      [TRUSTED, uri(`ws://rebind.example.com:${forbidden.port}/bridge`)], // trusted, wildcard name at 127.0.0.1
    ] as [string, string][][]) {
      failures.push(await rejection(alice.call('wsbridge', { headers })));
    }
    for (const f of failures) {
      assert.equal(f.status, 503);
      assert.equal(f.reason, failures[0]!.reason, 'one reason phrase for every failure');
      assert.equal(f.response?.get('warning'), undefined, 'no Warning: no detail of the failure');
      assert.doesNotMatch(f.response?.toString() ?? '', /ECONNREFUSED|getaddrinfo|refused|127\.0\.0\.1:1|allowed/i);
    }
    assert.equal(forbidden.count(), 0, 'nothing reached the loopback listener');
    assert.equal(server.connections.length, before);

    // the same, trusted and allowed: answered and bridged
    const call = alice.call('wsbridge', { headers: [TRUSTED, uri(server.url('/ok/bridge'))] });
    await call.answered;
    const conn = await server.connection(before);
    assert.equal(conn.path, '/ok/bridge');
    await call.hangup();
    await waitFor('the bridge to end', () => gw.taps.size === 0);
  });

  test('names: resolved once through the gateway\'s lookup; a wildcard name at an internal address is refused; an exact name connects to the address checked', async () => {
    const before = server.connections.length;
    const asked = dns.calls.length;
    const refusedCalls = [
      alice.call('bob', { headers: [TRUSTED, ['X-Audio-Stream', `start ws://rebind.example.com:${forbidden.port}/x mono 8k`]] }),
      alice.call('bob', { headers: [TRUSTED, ['X-Audio-Stream', `start ws://meta.example.com:${forbidden.port}/latest/meta-data mono 8k`]] }),
    ];
    for (const c of refusedCalls) await c.answered;
    await waitFor('the refused names to be looked up', () => dns.calls.length >= asked + 2);
    assert.deepEqual(dns.calls.slice(asked).sort(), ['meta.example.com', 'rebind.example.com'], 'refused after resolving, not before');

    // named.example.com answers 127.0.0.1 first, 127.0.0.2 after: the tap goes to the first
    const call = alice.call('bob', { headers: [TRUSTED, ['X-Audio-Stream', `start ws://named.example.com:${server.port}/named mono 8k`]] });
    await call.answered;
    const conn = await server.connection(before);
    assert.equal(conn.path, '/named');
    assert.equal(conn.headers.host, `named.example.com:${server.port}`, 'the name kept in Host');
    await conn.until('audio', () => conn.binaries.length >= 5);
    assert.deepEqual(dns.calls.filter((h) => h === 'named.example.com'), ['named.example.com'], 'one lookup: the address checked is the one connected to');
    assert.equal(forbidden.count(), 0);
    for (const c of [...refusedCalls, call]) await c.hangup();
    await waitFor('the taps to end', () => gw.taps.size === 0);
  });

  test('the API with the token taps to any URL, loopback included, through the same checked path; TLS files in a request are refused alike', async () => {
    const known = new Set(gw.calls.list().map((c) => c.id));
    const call = alice.call('bob');
    await call.answered;
    const gwCall = await waitFor('the call', () => gw.calls.list().find((c) => !known.has(c.id) && c.state === 'answered'));
    const post = async (body: unknown, token: string | null = TOKEN): Promise<{ status: number; json: Record<string, unknown> }> => {
      const r = await fetch(`http://127.0.0.1:${gw.ports.http}/api/calls/${gwCall.id}/taps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    assert.equal((await post({ url: server.url('/private') }, null)).status, 401);

    const before = server.connections.length;
    const started = await post({ url: server.url('/private'), mix: 'mono', rate: '8k' });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const conn = await server.connection(before);
    assert.equal(conn.path, '/private', 'a loopback URL no allow-list entry names');
    await conn.until('audio', () => conn.binaries.length >= 5);

    // a name: resolved once by the gateway's lookup, connected to what it answered
    const named = await post({ command: `start ws://api.example.com:${server.port}/api-named mono 8k` });
    assert.equal(named.status, 201, JSON.stringify(named.json));
    const conn2 = await server.connection(before + 1);
    assert.equal(conn2.path, '/api-named');
    assert.equal(conn2.headers.host, `api.example.com:${server.port}`);
    assert.deepEqual(dns.calls.filter((h) => h === 'api.example.com'), ['api.example.com']);

    const tlsRefusals = [];
    for (const body of [
      { url: `wss://127.0.0.1:${server.port}/x`, tls: { caFile: '/etc/passwd' } },
      { url: `wss://127.0.0.1:${server.port}/x`, tls: { caFile: '/no/such/file.pem' } },
      { command: `start wss://127.0.0.1:${server.port}/x mono 8k`, tls: { keyFile: '/etc/passwd' } },
    ]) {
      const r = await post(body);
      assert.equal(r.status, 400);
      tlsRefusals.push(r.json.message);
    }
    assert.equal(tlsRefusals[0], tlsRefusals[1], 'the same answer whether the file exists or not');
    assert.equal(tlsRefusals[0], tlsRefusals[2]);
    assert.match(String(tlsRefusals[0]), /config file only/);
    assert.equal(server.connections.length, before + 2, 'the refused requests opened nothing');
    await call.hangup();
    await waitFor('the taps to end', () => gw.taps.size === 0);
  });
});
