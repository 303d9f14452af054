/**
 * Where a tap may connect (server/taps/url-policy.ts, issue 10): the allow-list's syntax and
 * matching, the trust gate of taps from SIP, the address check after resolving (with stub
 * lookups: no test asks a real resolver), one lookup per tap, the pinned lookup the socket
 * connects with, and the TLS files a request may not name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { buildConfig, ConfigError } from '../../server/config/load.js';
import { parseCommand, parseStartBody, parseUrl, TapInputError, withDefaults } from '../../server/taps/options.js';
import { sipTapGate, tapSpecUrl } from '../../server/calls/sip-tap-gate.js';
import { pinnedLookup } from '../../server/taps/tap-lookup.js';
import { AllowedUrlError, parseAllowedUrl, TapUrlPolicy, TapUrlRefused, type LookupFn, type RefusalCode } from '../../server/taps/url-policy.js';
import { stubDns } from '../helpers/stub-dns.js';


async function refused(p: Promise<unknown>, code: RefusalCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof TapUrlRefused && e.code === code);
}

test('allow-list entries: scheme, host, port (default per scheme), path prefix; bad entries named', () => {
  assert.deepEqual(parseAllowedUrl('wss://Bot.Example.com/stream/'), { text: 'wss://Bot.Example.com/stream/', scheme: 'wss:', host: 'bot.example.com', suffix: null, port: 443, path: '/stream' });
  assert.deepEqual(parseAllowedUrl('ws://10.0.0.5:8090'), { text: 'ws://10.0.0.5:8090', scheme: 'ws:', host: '10.0.0.5', suffix: null, port: 8090, path: '/' });
  assert.equal(parseAllowedUrl('wss://*.bots.example.com:8443/a').suffix, '.bots.example.com');
  assert.equal(parseAllowedUrl('wss://*/').suffix, '');
  for (const bad of ['http://h/', 'bot.example.com', 'ws://u:p@h/', 'ws://h/x?token=1', 'ws://h/#f', 'ws://a.*.example.com/', 'ws://*example.com/', 'ws://*.10.0.0.1/', '']) {
    assert.throws(() => parseAllowedUrl(bad), AllowedUrlError, bad);
  }
});

test('taps.allowedUrls: empty by default (taps from SIP off); a bad entry is a config error naming it', () => {
  assert.deepEqual(buildConfig({}).taps.allowedUrls, []);
  assert.deepEqual(buildConfig({ taps: { allowedUrls: ['wss://bot.example.com/stream'] } }).taps.allowedUrls, ['wss://bot.example.com/stream']);
  assert.throws(() => buildConfig({ taps: { allowedUrls: ['https://bot.example.com/'] } }), (e: unknown) => e instanceof ConfigError && /taps\.allowedUrls: "https:\/\/bot\.example\.com\/": ws:\/\/ or wss:\/\/ expected/.test(e.message));
});

test('matching: exact scheme, host and port; the path on segment boundaries; the query ignored; no fragment', () => {
  const p = new TapUrlPolicy({ allowedUrls: ['wss://bot.example.com/stream', 'ws://127.0.0.1:8090/', 'wss://*.asr.example.net/v1'] });
  const yes = [
    'wss://bot.example.com/stream', 'wss://bot.example.com/stream/', 'wss://bot.example.com/stream/x?token=1',
    'wss://BOT.example.com:443/stream', 'wss://bot.example.com/a/../stream/x',
    'ws://127.0.0.1:8090/anything', 'ws://0x7f.1:8090/', 'ws://2130706433:8090/',
    'wss://eu.asr.example.net/v1/x', 'wss://a.b.asr.example.net/v1',
  ];
  const no = [
    'ws://bot.example.com/stream', 'wss://bot.example.com:8443/stream', 'wss://bot.example.com/streamer', 'wss://bot.example.com/',
    'wss://bot.example.com/x/../../streamer', 'wss://bot.example.com.evil.net/stream', 'wss://evil.net/stream?bot.example.com/stream',
    'wss://bot.example.com@evil.net/stream', 'ws://127.0.0.1:8091/', 'ws://127.0.0.2:8090/', 'ws://localhost:8090/',
    'wss://asr.example.net/v1', 'wss://eu.asr.example.net/v2', 'wss://bot.example.com/stream#frag', 'not a url',
  ];
  for (const u of yes) assert.ok(p.match(u), u);
  for (const u of no) assert.equal(p.match(u), null, u);
  // an exact entry wins over a wildcard
  const both = new TapUrlPolicy({ allowedUrls: ['ws://*:80/', 'ws://tap-server/'] });
  assert.equal(both.match('ws://tap-server/x')?.host, 'tap-server');
});

test('sip.mayTap: trusted requests and allowed URLs only; an empty allow-list is off; refusals logged once', () => {
  const lines: { code: string }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { code: string }) });
  const gate = sipTapGate(new TapUrlPolicy({ allowedUrls: ['ws://127.0.0.1:8090/asr'] }));
  assert.equal(gate.mayTap('start ws://127.0.0.1:8090/asr/x mono 8k', true, log), true);
  assert.equal(gate.mayTap('ws://127.0.0.1:8090/asr', true, log), true);
  assert.equal(gate.mayTap({ url: 'ws://127.0.0.1:8090/asr' }, true, log), true);
  assert.equal(gate.mayTap('start ws://127.0.0.1:8090/asr mono 8k', false, log), false);
  assert.equal(gate.mayTap('start ws://127.0.0.1:22/ mono 8k', true, log), false);
  assert.equal(gate.mayTap('start ws://169.254.169.254/latest mono 8k', true, log), false);
  assert.equal(gate.mayTap('stop', true, log), false);
  assert.equal(gate.mayTap({ url: 'ws://127.0.0.1:8090/asr', tls: { caFile: '/etc/shadow' } }, true, log), false);
  assert.deepEqual(lines.map((l) => l.code), ['untrusted', 'not_allowed', 'not_allowed', 'bad_request', 'bad_request']);
  assert.equal(sipTapGate(new TapUrlPolicy({ allowedUrls: [] })).mayTap('ws://127.0.0.1:8090/asr', true, log), false, 'off by default');
  assert.equal(tapSpecUrl('start ws://h:1/x?a=b mixed 16k meta data'), 'ws://h:1/x?a=b');
});

test('after resolving: internal addresses refused for wildcard matches, allowed for an exact host', async () => {
  const dns = stubDns({ 'rebind.example.com': ['127.0.0.1'], 'meta.example.com': ['169.254.169.254'], 'v6.example.com': ['::1'], 'bot.example.com': ['198.18.0.10'], 'tap-server': ['172.18.0.5'] });
  const p = new TapUrlPolicy({ allowedUrls: ['ws://*.example.com/', 'ws://tap-server:8090/', 'ws://*:9000/'], lookup: dns, callerLookup: dns });
  await refused(p.resolve('ws://rebind.example.com/', 'sip'), 'internal_address');
  await refused(p.resolve('ws://meta.example.com/latest/meta-data', 'sip'), 'internal_address');
  await refused(p.resolve('ws://v6.example.com/', 'sip'), 'internal_address');
  await refused(p.resolve('ws://127.0.0.1:9000/', 'sip'), 'internal_address');
  await refused(p.resolve('ws://[::ffff:127.0.0.1]:9000/', 'sip'), 'internal_address');
  await refused(p.resolve('ws://0.0.0.0:9000/', 'sip'), 'internal_address');
  await refused(p.resolve('ws://nowhere.example.com/', 'sip'), 'unresolved');
  await refused(p.resolve('ws://127.0.0.1:22/', 'sip'), 'not_allowed');
  assert.deepEqual(await p.resolve('ws://bot.example.com/', 'sip'), { address: '198.18.0.10', family: 4 });
  assert.deepEqual(await p.resolve('ws://198.18.0.1:9000/', 'sip'), { address: '198.18.0.1', family: 4 });
  assert.deepEqual(await p.resolve('ws://tap-server:8090/x', 'sip'), { address: '172.18.0.5', family: 4 }, 'the exact host is the operator\'s to name');
  // the API (the operator's token) reaches any address
  assert.deepEqual(await p.resolve('ws://meta.example.com/', 'api'), { address: '169.254.169.254', family: 4 });
  assert.deepEqual(await p.resolve('ws://127.0.0.1:22/', 'api'), { address: '127.0.0.1', family: 4 });

  const exact = new TapUrlPolicy({ allowedUrls: ['ws://meta.example.com/', 'ws://127.0.0.1:8090/'], lookup: dns });
  assert.equal((await exact.resolve('ws://meta.example.com/', 'sip')).address, '169.254.169.254', 'allowed by its exact name');
  assert.equal((await exact.resolve('ws://127.0.0.1:8090/', 'sip')).address, '127.0.0.1', 'allowed by its IP literal');
});

test('a mixed answer (one public, one internal) is refused for a wildcard match', async () => {
  const mixed: LookupFn = async () => [{ address: '198.18.0.10', family: 4 }, { address: '10.0.0.1', family: 4 }];
  const p = new TapUrlPolicy({ allowedUrls: ['ws://*.example.com/'], callerLookup: mixed });
  await refused(p.resolve('ws://x.example.com/', 'sip'), 'internal_address');
});

test('names only a caller wrote are not resolved when sip.dns is off (no query at all)', async () => {
  const dns = stubDns({ 'bot.example.com': ['198.18.0.10'] });
  const p = new TapUrlPolicy({ allowedUrls: ['ws://*.example.com/', 'ws://exact.example.com/'], lookup: dns, callerLookup: null });
  await refused(p.resolve('ws://bot.example.com/', 'sip'), 'no_dns');
  assert.deepEqual(dns.calls, []);
  await refused(p.resolve('ws://exact.example.com/', 'sip'), 'unresolved');
  assert.deepEqual(dns.calls, ['exact.example.com'], 'an exact host resolves as the system does');
});

test('one lookup per tap: the address checked is the address returned, whatever a second answer would be', async () => {
  const dns = stubDns({ 'flip.example.com': ['198.18.0.10', '127.0.0.1'] });
  const p = new TapUrlPolicy({ allowedUrls: ['ws://*.example.com/'], callerLookup: dns });
  assert.deepEqual(await p.resolve('ws://flip.example.com/', 'sip'), { address: '198.18.0.10', family: 4 });
  assert.deepEqual(dns.calls, ['flip.example.com']);
  // the socket's lookup answers only the checked address, in both of net's call shapes
  const lookup = pinnedLookup({ address: '198.18.0.10', family: 4 }) as unknown as (h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) => void;
  lookup('flip.example.com', { all: true }, (err, list) => assert.deepEqual([err, list], [null, [{ address: '198.18.0.10', family: 4 }]]));
  lookup('flip.example.com', {}, (err, address, family) => assert.deepEqual([err, address, family], [null, '198.18.0.10', 4]));
  assert.deepEqual(dns.calls, ['flip.example.com'], 'no second query');
});

test('TLS files only from the config file: a request naming one is refused, the same way whether it exists or not', () => {
  const messages = ['/etc/passwd', '/no/such/file.pem'].map((f) => {
    try {
      parseStartBody({ url: 'wss://h/x', tls: { caFile: f } });
      return 'accepted';
    } catch (e) {
      assert.ok(e instanceof TapInputError);
      assert.equal(e.status, 400);
      return e.message;
    }
  });
  assert.equal(messages[0], messages[1]);
  assert.match(messages[0]!, /config file only/);
  assert.doesNotMatch(messages[0]!, /passwd|exist|ENOENT/);
  for (const tls of [{ certFile: '/x' }, { keyFile: '/x' }, { caFile: 'NONE' }]) assert.throws(() => parseStartBody({ url: 'wss://h/x', tls }), /config file only/);
  assert.throws(() => parseCommand('start wss://h/x mono 8k', { tls: { caFile: '/etc/passwd' } }), /config file only/);
  // the config's defaults may; a request's checkHostname keeps them
  const defaults = parseStartBody({ url: 'wss://h/', tls: { caFile: '/etc/gw/ca.pem' }, heartbeatSec: 5 }, { fromConfig: true });
  assert.equal(defaults.tls?.caFile, '/etc/gw/ca.pem');
  const merged = withDefaults({ tls: defaults.tls, heartbeatSec: 5 }, parseStartBody({ url: 'wss://h/x', tls: { checkHostname: false } }));
  assert.deepEqual(merged.tls, { caFile: '/etc/gw/ca.pem', certFile: undefined, keyFile: undefined, checkHostname: false });
  assert.equal(merged.heartbeatSec, 5, 'a key the request left out keeps the default');
  assert.equal(merged.connectTo, undefined);
});

test('a URL with a fragment is refused up front (ws would throw from its constructor)', () => {
  assert.throws(() => parseUrl('ws://127.0.0.1:8090/x#y'), /no fragment/);
  assert.throws(() => parseCommand('start ws://h/x#frag mono 8k'), /no fragment/);
});
