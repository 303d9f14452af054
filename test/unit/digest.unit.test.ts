/** server/registrar/digest.ts: HTTP Digest for SIP (RFC 2617, RFC 7616 / RFC 8760), nonces bound to the client, nonce-counts. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  challengeHeader,
  expectedResponse,
  ha1,
  ha2CacheSize,
  Hmac,
  NonceFactory,
  nonceCount,
  parseCredentials,
  timingSafeEqualHex,
} from '../../server/registrar/digest.js';

/** RFC 2617 §3.5: the Authorization header of the example. */
const RFC2617_AUTHORIZATION = [
  'Digest username="Mufasa",',
  ' realm="testrealm@host.com",',
  ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",',
  ' uri="/dir/index.html",',
  ' qop=auth,',
  ' nc=00000001,',
  ' cnonce="0a4f113b",',
  ' response="6629fae49393a05397450978507c4ef1",',
  ' opaque="5ccc069c403ebaf9f0171e9517f40e41"',
].join('');

/** RFC 7616 §3.9.1: the same user, with SHA-256 and MD5. */
const RFC7616_AUTHORIZATION = [
  'Digest username="Mufasa",',
  ' realm="http-auth@example.org",',
  ' uri="/dir/index.html",',
  ' algorithm=SHA-256,',
  ' nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",',
  ' nc=00000001,',
  ' cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",',
  ' qop=auth,',
  ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",',
  ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
].join('');

describe('parseCredentials', () => {
  it('reads the RFC 2617 §3.5 example: quoted and unquoted values', () => {
    const c = parseCredentials(RFC2617_AUTHORIZATION);
    assert.ok(c);
    assert.equal(c.scheme, 'Digest');
    assert.deepEqual(Object.fromEntries(c.params), {
      username: 'Mufasa',
      realm: 'testrealm@host.com',
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      uri: '/dir/index.html',
      qop: 'auth',
      nc: '00000001',
      cnonce: '0a4f113b',
      response: '6629fae49393a05397450978507c4ef1',
      opaque: '5ccc069c403ebaf9f0171e9517f40e41',
    });
  });

  it('commas and escaped quotes inside quoted values; LWS around = and ,; names case-insensitive', () => {
    const c = parseCredentials('Digest USERNAME = "a\\"b,c" ,realm=x,  uri="sip:bob@example.com;transport=ws, x", nonce="n"');
    assert.ok(c);
    assert.equal(c.params.get('username'), 'a"b,c');
    assert.equal(c.params.get('realm'), 'x');
    assert.equal(c.params.get('uri'), 'sip:bob@example.com;transport=ws, x');
    assert.equal(c.params.get('nonce'), 'n');
  });

  it('a tab between the scheme and the parameters is LWS too', () => {
    const c = parseCredentials('Digest\tusername="1000", realm="example.com"');
    assert.ok(c);
    assert.equal(c.scheme, 'Digest');
    assert.equal(c.params.get('username'), '1000');
  });

  it('a SIP REGISTER Authorization as softphones send it', () => {
    const c = parseCredentials('Digest algorithm=MD5, username="1000", realm="example.com", nonce="AAAB", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", qop=auth, cnonce="x1", nc=00000002');
    assert.ok(c);
    assert.equal(c.params.get('algorithm'), 'MD5');
    assert.equal(c.params.get('uri'), 'sip:example.com');
    assert.equal(c.params.get('nc'), '00000002');
  });

  it('an unknown scheme is read, for the registrar to refuse (RFC 4475 regaut01)', () => {
    const c = parseCredentials('NoOneKnowsThisScheme opaque-data=here');
    assert.ok(c);
    assert.equal(c.scheme, 'NoOneKnowsThisScheme');
    assert.equal(c.params.get('opaque-data'), 'here');
  });

  it('refuses what cannot be read', () => {
    assert.equal(parseCredentials('Digest'), null);
    assert.equal(parseCredentials('Digest username="unterminated'), null);
    assert.equal(parseCredentials('Digest username'), null);
  });
});

describe('digest response', () => {
  it('RFC 2617 §3.5: MD5 with qop=auth computes 6629fae49393a05397450978507c4ef1', () => {
    const c = parseCredentials(RFC2617_AUTHORIZATION)!;
    const secret = ha1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life');
    const expected = expectedResponse('MD5', secret, 'GET', c.params);
    assert.equal(expected, '6629fae49393a05397450978507c4ef1');
    assert.ok(timingSafeEqualHex(expected, c.params.get('response')!));
  });

  it('RFC 7616 §3.9.1: SHA-256 computes 753927fa...6cb6c1, MD5 8ca523f5...ebdbec', () => {
    const c = parseCredentials(RFC7616_AUTHORIZATION)!;
    const sha = expectedResponse('SHA-256', ha1('SHA-256', 'Mufasa', 'http-auth@example.org', 'Circle of Life'), 'GET', c.params);
    assert.equal(sha, '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
    assert.ok(timingSafeEqualHex(sha, c.params.get('response')!));
    const md5 = expectedResponse('MD5', ha1('MD5', 'Mufasa', 'http-auth@example.org', 'Circle of Life'), 'GET', c.params);
    assert.equal(md5, '8ca523f5e9506fed4657c9700eebdbec');
  });

  it('a wrong password, method or uri gives another response', () => {
    const c = parseCredentials(RFC2617_AUTHORIZATION)!;
    const good = c.params.get('response')!;
    assert.ok(!timingSafeEqualHex(expectedResponse('MD5', ha1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle of life'), 'GET', c.params), good));
    const secret = ha1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life');
    assert.ok(!timingSafeEqualHex(expectedResponse('MD5', secret, 'POST', c.params), good));
    const other = new Map(c.params).set('uri', '/dir/other.html');
    assert.ok(!timingSafeEqualHex(expectedResponse('MD5', secret, 'GET', other), good));
  });

  it('without qop: RFC 2069 compatibility, H(HA1:nonce:HA2)', () => {
    // RFC 2069 §2.4 as corrected by its errata (Mufasa / CircleOfLife / GET /dir/index.html)
    const params = new Map([['uri', '/dir/index.html'], ['nonce', 'dcd98b7102dd2f0e8b11d0f600bfb0c093']]);
    const r = expectedResponse('MD5', ha1('MD5', 'Mufasa', 'testrealm@host.com', 'CircleOfLife'), 'GET', params);
    assert.equal(r, '1949323746fe6a43ef61f9606e7febea');
  });

  it('timingSafeEqualHex is false for different lengths', () => {
    assert.equal(timingSafeEqualHex('abc', 'abcd'), false);
    assert.equal(timingSafeEqualHex('abcd', 'abcd'), true);
  });
});

describe('NonceFactory', () => {
  const T0 = 1_700_000_000_000;
  const A = '192.0.2.10';

  it('a fresh nonce is valid for the address it was made for', () => {
    const f = new NonceFactory(30_000);
    const n = f.make(A, T0);
    assert.equal(f.check(n, A, T0), 'valid');
    assert.equal(f.check(n, A, T0 + 29_000), 'valid');
  });

  it('a nonce made for one address is invalid from another (bound to the client)', () => {
    const f = new NonceFactory(30_000);
    assert.equal(f.check(f.make(A, T0), '192.0.2.11', T0), 'invalid');
  });

  it('an old nonce is stale (the client retries without asking the user: RFC 2617 stale=true)', () => {
    const f = new NonceFactory(30_000);
    assert.equal(f.check(f.make(A, T0), A, T0 + 30_001), 'stale');
  });

  it('a nonce from another process (another secret) is invalid', () => {
    assert.equal(new NonceFactory(30_000).check(new NonceFactory(30_000).make(A, T0), A, T0), 'invalid');
  });

  it('a forged nonce is invalid: any character changed', () => {
    const f = new NonceFactory(30_000);
    const n = f.make(A, T0);
    for (let i = 0; i < n.length; i++) {
      const forged = n.slice(0, i) + (n[i] === 'A' ? 'B' : 'A') + n.slice(i + 1);
      assert.equal(f.check(forged, A, T0), 'invalid', `changed at ${i}`);
    }
  });

  it('a truncated or extended nonce is invalid', () => {
    const f = new NonceFactory(30_000);
    const n = f.make(A, T0);
    for (const bad of [n.slice(0, -1), n.slice(0, 16), '', n + 'A', n + '==', n + '!', 'A' + n, n.slice(0, 10) + '.' + n.slice(11)]) {
      assert.equal(f.check(bad, A, T0), 'invalid', JSON.stringify(bad));
    }
  });

  it('a nonce dated in the future is invalid', () => {
    const f = new NonceFactory(30_000);
    assert.equal(f.check(f.make(A, T0 + 60_000), A, T0), 'invalid');
  });

  it('every challenge gets its own token-safe nonce', () => {
    const f = new NonceFactory(30_000);
    const a = f.make(A, T0);
    assert.notEqual(f.make(A, T0), a);
    assert.match(a, /^[A-Za-z0-9_-]{32}$/);
  });

  it('nonce-count: each count once, rising; a count used before is a replay', () => {
    const f = new NonceFactory(30_000);
    const n = f.make(A, T0);
    assert.equal(f.use(n, 1), 'ok');
    assert.equal(f.use(n, 1), 'replayed');
    assert.equal(f.use(n, 2), 'ok');
    assert.equal(f.use(n, 5), 'ok');
    assert.equal(f.use(n, 3), 'replayed');
    // another nonce has its own count
    assert.equal(f.use(f.make(A, T0), 1), 'ok');
  });

  it('fixed memory: a nonce whose slot a newer one took is evicted (stale), never fresh again', () => {
    const f = new NonceFactory(30_000, 4);
    const old = f.make(A, T0);
    assert.equal(f.use(old, 1), 'ok');
    for (let i = 0; i < 4; i++) f.make(A, T0);
    assert.equal(f.use(old, 2), 'evicted');
    assert.equal(f.use(old, 1), 'evicted');
    assert.deepEqual(f.toJSON(), { slots: 4, ttlMs: 30_000 });
    assert.throws(() => new NonceFactory(30_000, 3), RangeError);
  });
});

describe('Hmac', () => {
  it('is HMAC-SHA-256 (RFC 2104): the same as crypto.createHmac, ASCII or not', async () => {
    const crypto = await import('node:crypto');
    const key = crypto.randomBytes(64).map((b) => b & 0x7f);
    const h = new Hmac(key);
    for (const text of ['', 'lq2x9k0ab00012ab127.0.0.1', 'x'.repeat(300), 'caf\u00e9 \u00ff']) {
      assert.equal(h.sign(text), crypto.createHmac('sha256', key).update(text, 'latin1').digest('base64url'), JSON.stringify(text));
    }
    assert.throws(() => new Hmac(Buffer.alloc(64, 0x80)), RangeError);
  });
});

describe('nonceCount', () => {
  it('reads 8 hex digits; refuses other forms and 0; without qop a nonce is good once', () => {
    assert.equal(nonceCount(new Map([['qop', 'auth'], ['nc', '0000000a']])), 10);
    assert.equal(nonceCount(new Map([['qop', 'auth'], ['nc', 'FFFFFFFF']])), 0xffffffff);
    for (const bad of ['1', '000000001', '0000000g', '00000000', '']) assert.equal(nonceCount(new Map([['qop', 'auth'], ['nc', bad]])), null, bad);
    assert.equal(nonceCount(new Map([['qop', 'auth']])), null);
    assert.equal(nonceCount(new Map()), 1);
  });
});

describe('H(A2) cache', () => {
  it('stays bounded whatever uris clients send', () => {
    const secret = ha1('MD5', 'u', 'r', 'p');
    for (let i = 0; i < 3000; i++) expectedResponse('MD5', secret, 'REGISTER', new Map([['uri', `sip:${'x'.repeat(i % 500)}${i}`], ['nonce', 'n']]));
    assert.ok(ha2CacheSize() <= 1000, `ha2 cache ${ha2CacheSize()}`);
  });
});

describe('challengeHeader', () => {
  it('a challenge a client can read back', () => {
    const c = parseCredentials(challengeHeader('example.com', 'abc', 'SHA-256', true))!;
    assert.equal(c.scheme, 'Digest');
    assert.equal(c.params.get('realm'), 'example.com');
    assert.equal(c.params.get('nonce'), 'abc');
    assert.equal(c.params.get('qop'), 'auth');
    assert.equal(c.params.get('algorithm'), 'SHA-256');
    assert.equal(c.params.get('stale'), 'true');
    assert.equal(parseCredentials(challengeHeader('example.com', 'abc', 'MD5', false))!.params.has('stale'), false);
  });
});
