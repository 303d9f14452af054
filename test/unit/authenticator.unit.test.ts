/**
 * server/registrar/authenticator.ts: digest authentication for REGISTER (401) and for the
 * proxy (407), one reply for every failure, nonce-count replays, stale nonces, demo accounts
 * only from private sources, and fixed memory whatever clients send.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Authenticator, authResponse, type AuthFailure, type AuthRefusal, type AuthResult } from '../../server/registrar/authenticator.js';
import { expectedResponse, ha1, parseCredentials } from '../../server/registrar/digest.js';
import type { SipRequest } from '../../server/sip/message.js';
import { parseMessage } from '../../server/sip/parser.js';

const REALM = 'gw.example.com';
const ACCOUNTS = [{ username: 'alice', password: 'pw-alice' }, { username: '1000', password: 'secret1000' }];

function authenticator(nonceTtl = 30, nonceSlots?: number): { auth: Authenticator; failures: AuthFailure[] } {
  const auth = new Authenticator({ realm: REALM, algorithms: ['MD5', 'SHA-256'], nonceTtl, nonceSlots }, ACCOUNTS);
  const failures: AuthFailure[] = [];
  auth.on('authFailed', (f) => failures.push(f));
  return { auth, failures };
}

let n = 0;

/** A request from `address` (port 5062), with credentials when given. */
function request(method: string, user: string, opts: { address?: string; headers?: string[]; contact?: string } = {}): SipRequest {
  n++;
  const text = [
    `${method} sip:${method === 'REGISTER' ? '' : 'bob@'}${REALM} SIP/2.0`,
    `Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK-u${n}`,
    'Max-Forwards: 70',
    `From: <sip:${user}@${REALM}>;tag=f${n}`,
    `To: <sip:${method === 'REGISTER' ? user : 'bob'}@${REALM}>`,
    `Call-ID: auth-${n}`,
    `CSeq: ${n} ${method}`,
    `Contact: <${opts.contact ?? `sip:${user}@192.0.2.1:5062`}>`,
    ...(opts.headers ?? []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const r = parseMessage(Buffer.from(text, 'latin1'));
  assert.equal(r.kind, 'message');
  const req = r.message as SipRequest;
  const address = opts.address ?? '127.0.0.1';
  req.source = { transport: 'udp', address, port: 5062, localAddress: '127.0.0.1', localPort: 5060, flowId: null };
  return req;
}

/** The client's answer to a challenge (MD5, qop=auth). */
function answer(ch: AuthResult, o: { user: string; password: string; method: string; uri: string; nc?: number; realm?: string }): string {
  assert.equal(ch.ok, false);
  const header = (ch as AuthRefusal).headers[0]![1];
  const c = parseCredentials(header)!.params;
  const nonce = c.get('nonce')!;
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const realm = o.realm ?? c.get('realm')!;
  const params = new Map([['uri', o.uri], ['nonce', nonce], ['qop', 'auth'], ['nc', nc], ['cnonce', 'c0ffee']]);
  const response = expectedResponse('MD5', ha1('MD5', o.user, realm, o.password), o.method, params);
  return `Digest username="${o.user}", realm="${realm}", nonce="${nonce}", uri="${o.uri}", response="${response}", algorithm=MD5, qop=auth, nc=${nc}, cnonce="c0ffee"`;
}

const REG_URI = `sip:${REALM}`;

describe('Authenticator', () => {
  it('challenges REGISTER with 401 / WWW-Authenticate, one header per algorithm, qop=auth, one fresh nonce', () => {
    const { auth } = authenticator();
    const r = auth.check(request('REGISTER', 'alice'), 'www', 'alice') as AuthRefusal;
    assert.equal(r.ok, false);
    assert.equal(r.status, 401);
    assert.deepEqual(r.headers.map(([h]) => h), ['WWW-Authenticate', 'WWW-Authenticate']);
    const md5 = parseCredentials(r.headers[0]![1])!.params;
    assert.equal(md5.get('realm'), REALM);
    assert.equal(md5.get('qop'), 'auth');
    assert.equal(md5.get('algorithm'), 'MD5');
    assert.equal(md5.has('stale'), false);
    assert.equal(parseCredentials(r.headers[1]![1])!.params.get('algorithm'), 'SHA-256');
    const again = auth.check(request('REGISTER', 'alice'), 'www') as AuthRefusal;
    assert.notEqual(parseCredentials(again.headers[0]![1])!.params.get('nonce'), md5.get('nonce'), 'a nonce per challenge');
    const res = authResponse(request('REGISTER', 'alice'), r);
    assert.equal(res.status, 401);
    assert.equal(res.getAll('www-authenticate').length, 2);
    assert.equal(res.stateless, true, 'a challenge is not kept by its transaction');
  });

  it('a 403 is kept by its transaction (a retransmission is not a second failure)', () => {
    const { auth } = authenticator();
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice');
    const value = answer(ch, { user: 'alice', password: 'wrong', method: 'REGISTER', uri: REG_URI });
    const r = auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${value}`] }), 'www', 'alice') as AuthRefusal;
    assert.equal(r.status, 403);
    assert.equal(authResponse(request('REGISTER', 'alice'), r).stateless, false);
  });

  it('proxy: 407 / Proxy-Authenticate, answered in Proxy-Authorization (an Authorization header is not read)', () => {
    const { auth } = authenticator();
    const ch = auth.check(request('INVITE', 'alice'), 'proxy') as AuthRefusal;
    assert.equal(ch.status, 407);
    assert.equal(ch.reason, 'Proxy Authentication Required');
    assert.deepEqual(ch.headers.map(([h]) => h), ['Proxy-Authenticate', 'Proxy-Authenticate']);
    const value = answer(ch, { user: 'alice', password: 'pw-alice', method: 'INVITE', uri: `sip:bob@${REALM}` });
    assert.deepEqual(auth.check(request('INVITE', 'alice', { headers: [`Proxy-Authorization: ${value}`] }), 'proxy'), { ok: true, user: 'alice' });
    assert.equal((auth.check(request('INVITE', 'alice', { headers: [`Authorization: ${value}`] }), 'proxy') as AuthRefusal).status, 407);
  });

  it('accepts the right password, and credentials for a method only for that method', () => {
    const { auth, failures } = authenticator();
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice');
    const value = answer(ch, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI });
    assert.deepEqual(auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${value}`] }), 'www', 'alice'), { ok: true, user: 'alice' });
    // the same credentials on an INVITE (method in H(A2)) prove nothing
    assert.equal((auth.check(request('INVITE', 'alice', { headers: [`Proxy-Authorization: ${value}`] }), 'proxy') as AuthRefusal).status, 403);
    assert.equal(failures.length, 1);
  });

  it('unknown user, wrong password and a user name other than the To user get the very same reply', () => {
    const { auth, failures } = authenticator();
    const replies = [
      { user: 'mallory', password: 'x', to: 'mallory' },
      { user: 'alice', password: 'wrong', to: 'alice' },
      { user: 'alice', password: 'pw-alice', to: '1000' },
    ].map((t) => {
      const ch = auth.check(request('REGISTER', t.to), 'www', t.to);
      const value = answer(ch, { user: t.user, password: t.password, method: 'REGISTER', uri: REG_URI });
      return auth.check(request('REGISTER', t.to, { headers: [`Authorization: ${value}`] }), 'www', t.to);
    });
    assert.deepEqual(replies[0], { ok: false, status: 403, reason: 'Forbidden', headers: [] });
    assert.deepEqual(replies[1], replies[0]);
    assert.deepEqual(replies[2], replies[0]);
    assert.deepEqual(failures.map((f) => [f.username, f.reason, f.source, f.address, f.method]), [
      ['mallory', 'unknown user', '127.0.0.1:5062', '127.0.0.1', 'REGISTER'],
      ['alice', 'wrong password', '127.0.0.1:5062', '127.0.0.1', 'REGISTER'],
      ['alice', 'user name does not match the To user', '127.0.0.1:5062', '127.0.0.1', 'REGISTER'],
    ]);
  });

  it('a replayed Authorization (same nonce, same nc) is refused with a fresh challenge; the next nc is accepted', () => {
    const { auth, failures } = authenticator();
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice');
    const first = answer(ch, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI });
    assert.equal(auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${first}`] }), 'www', 'alice').ok, true);
    // the attacker's copy, with another Contact
    const replay = auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${first}`], contact: 'sip:evil@203.0.113.9' }), 'www', 'alice') as AuthRefusal;
    assert.equal(replay.status, 401);
    assert.equal(parseCredentials(replay.headers[0]![1])!.params.get('stale'), 'true');
    assert.deepEqual(failures.map((f) => f.reason), ['nonce count reused (replay)']);
    const second = answer(ch, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI, nc: 2 });
    assert.equal(auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${second}`] }), 'www', 'alice').ok, true);
  });

  it('credentials without qop (RFC 2069) are good once', () => {
    const { auth } = authenticator();
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice') as AuthRefusal;
    const nonce = parseCredentials(ch.headers[0]![1])!.params.get('nonce')!;
    const response = expectedResponse('MD5', ha1('MD5', 'alice', REALM, 'pw-alice'), 'REGISTER', new Map([['uri', REG_URI], ['nonce', nonce]]));
    const value = `Digest username="alice", realm="${REALM}", nonce="${nonce}", uri="${REG_URI}", response="${response}"`;
    assert.equal(auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${value}`] }), 'www', 'alice').ok, true);
    assert.equal((auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${value}`] }), 'www', 'alice') as AuthRefusal).status, 401);
  });

  it('an expired nonce: 401 with stale=true when the password was right, 403 when it was not', async () => {
    const { auth } = authenticator(0.05);
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice');
    const good = answer(ch, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI });
    const bad = answer(ch, { user: 'alice', password: 'nope', method: 'REGISTER', uri: REG_URI });
    await new Promise((r) => setTimeout(r, 120));
    const stale = auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${good}`] }), 'www', 'alice') as AuthRefusal;
    assert.equal(stale.status, 401);
    assert.equal(parseCredentials(stale.headers[0]![1])!.params.get('stale'), 'true');
    assert.equal((auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${bad}`] }), 'www', 'alice') as AuthRefusal).status, 403);
    // the client answers the new challenge without asking its user
    const again = answer(stale, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI });
    assert.equal(auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${again}`] }), 'www', 'alice').ok, true);
  });

  it('a nonce is bound to the address it was given to: from elsewhere it is as good as none', () => {
    const { auth, failures } = authenticator();
    const ch = auth.check(request('REGISTER', 'alice', { address: '127.0.0.1' }), 'www', 'alice');
    const value = answer(ch, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI });
    const r = auth.check(request('REGISTER', 'alice', { address: '127.0.0.2', headers: [`Authorization: ${value}`] }), 'www', 'alice') as AuthRefusal;
    assert.equal(r.status, 401);
    assert.equal(parseCredentials(r.headers[0]![1])!.params.has('stale'), false);
    assert.equal(failures.length, 0);
  });

  it('credentials for another realm, an unknown scheme or an unoffered algorithm are not read: challenged', () => {
    const { auth } = authenticator();
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice');
    const other = answer(ch, { user: 'alice', password: 'pw-alice', method: 'REGISTER', uri: REG_URI, realm: 'evil.example' });
    for (const h of [other, 'NoOneKnowsThisScheme opaque-data=here', 'Digest username="alice", realm="' + REALM + '", algorithm=MD5-sess, nonce="x"', 'Digest']) {
      assert.equal((auth.check(request('REGISTER', 'alice', { headers: [`Authorization: ${h}`] }), 'www', 'alice') as AuthRefusal).status, 401, h);
    }
  });

  it('demo accounts answer private sources only; from a public one, exactly what a wrong password gets', () => {
    const { auth, failures } = authenticator();
    const tryFrom = (address: string, user: string, password: string): AuthResult => {
      const ch = auth.check(request('REGISTER', user, { address }), 'www', user);
      const value = answer(ch, { user, password, method: 'REGISTER', uri: REG_URI });
      return auth.check(request('REGISTER', user, { address, headers: [`Authorization: ${value}`] }), 'www', user);
    };
    for (const a of ['127.0.0.1', '192.168.1.20', '10.1.2.3', '::1', 'fd00::5', '169.254.9.9']) assert.deepEqual(tryFrom(a, '1000', 'secret1000'), { ok: true, user: '1000' }, a);
    const wrong = tryFrom('198.18.0.2', 'alice', 'not-it');
    assert.deepEqual(tryFrom('198.18.0.2', '1000', 'secret1000'), wrong);
    assert.deepEqual(tryFrom('198.18.0.2', 'alice', 'pw-alice'), { ok: true, user: 'alice' }, 'a configured account answers anyone');
    assert.deepEqual(failures.map((f) => [f.username, f.reason, f.address]), [
      ['alice', 'wrong password', '198.18.0.2'],
      ['1000', 'demo user from a public address', '198.18.0.2'],
    ]);
  });

  it('memory is fixed: 3000 failures with long user names, uris and realms change no size', () => {
    const { auth, failures } = authenticator();
    const before = auth.toJSON();
    assert.deepEqual({ ...before, ha2Cache: 0 }, { realm: REALM, accounts: 2, ha1: 4, ha2Cache: 0, nonceSlots: 65536, nonceTtlMs: 30_000 });
    const ch = auth.check(request('REGISTER', 'alice'), 'www', 'alice');
    for (let i = 0; i < 3000; i++) {
      const user = `u${i}${'x'.repeat(1000)}`;
      const value = answer(ch, { user, password: 'p', method: 'REGISTER', uri: `sip:${'h'.repeat(1000)}${i}.example` });
      auth.check(request('REGISTER', user, { headers: [`Authorization: ${value}`] }), 'www', user);
    }
    const after = auth.toJSON();
    assert.equal(failures.length, 3000);
    assert.ok(failures.every((f) => f.username!.length <= 65), 'user names in events are cut short');
    assert.deepEqual({ ...after, ha2Cache: 0 }, { ...before, ha2Cache: 0 });
    assert.ok(after.ha2Cache <= 1000);
  });
});
