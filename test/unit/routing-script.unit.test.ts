/**
 * server/routing/script.ts, the default routing script, driven with a fake context (real
 * parsed requests, the context's answers set by each test): what it does with REGISTERs,
 * in-dialog requests, strangers and users (route[AUTH]), calls to users and to wsbridge, and
 * how it picks each leg's media modes and answers when every branch failed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Action } from '../../server/routing/api.js';
import { DST_WS, SRC_WS } from '../../server/routing/flags.js';
import { script } from '../../server/routing/script.js';
import type { SipRequest } from '../../server/sip/message.js';
import { makeResponse } from '../../server/sip/reply.js';
import type { TransportKind } from '../../server/sip/transport/types.js';
import { CHALLENGE, fakeBranch, FakeScriptContext, target, type FakeAnswers } from '../helpers/fake-script-context.js';
import { parseRequest, sourceOf } from '../helpers/sip-request.js';

const DOMAIN = 'gw.example.com';
let n = 0;

interface RequestSpec {
  uri?: string;
  from?: string;
  to?: string;
  toTag?: boolean;
  transport?: TransportKind;
  headers?: string[];
}

/** A request from a phone at 192.0.2.10 (over UDP unless said), as it would write it. */
function request(method: string, o: RequestSpec = {}): SipRequest {
  n++;
  const transport = o.transport ?? 'udp';
  const uri = o.uri ?? `sip:bob@${DOMAIN}`;
  const from = o.from ?? 'alice';
  const to = o.to ?? (method === 'REGISTER' ? from : 'bob');
  return parseRequest([
    `${method} ${uri} SIP/2.0`,
    `Via: SIP/2.0/${transport.toUpperCase()} 192.0.2.10:5062;branch=z9hG4bK-rs${n}`,
    'Max-Forwards: 70',
    `From: <sip:${from}@${DOMAIN}>;tag=f${n}`,
    `To: <sip:${to}@${DOMAIN}>${o.toTag ? ';tag=t1' : ''}`,
    `Call-ID: script-${n}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:${from}@192.0.2.10:5062;transport=${transport}>`,
    ...(o.headers ?? []),
  ], sourceOf(transport, '192.0.2.10', 5062));
}

/** Runs route{} on a request; returns the action and the context to look at. */
async function route(req: SipRequest, answers: FakeAnswers = {}): Promise<{ action: Action; sip: FakeScriptContext }> {
  const sip = new FakeScriptContext(req, answers);
  const action = await script.request(sip);
  return { action, sip };
}

const reply = (status: number, reason?: string): Action => ({ kind: 'reply', status, ...(reason !== undefined && { reason }) });
const BOB = [target('sip:bob@192.0.2.20:5060'), target('sip:bob@df7jal23ls0d.invalid;transport=ws', DST_WS)];

describe('routing script: REGISTER', () => {
  test('from a WebSocket client: saved with the DST_WS branch flag (lookup restores it)', async () => {
    const { action, sip } = await route(request('REGISTER', { uri: `sip:${DOMAIN}`, transport: 'ws' }));
    assert.deepEqual(action, { kind: 'save' });
    assert.equal(sip.isFlagSet(SRC_WS), true);
    assert.equal(sip.branchFlags, DST_WS);
  });

  test('from UDP: saved without branch flags', async () => {
    const { action, sip } = await route(request('REGISTER', { uri: `sip:${DOMAIN}` }));
    assert.deepEqual(action, { kind: 'save' });
    assert.equal(sip.flags, 0);
    assert.equal(sip.branchFlags, 0);
  });

  test('for another domain: 403, nothing saved', async () => {
    const { action, sip } = await route(request('REGISTER', { uri: 'sip:elsewhere.example' }), { myself: false });
    assert.deepEqual(action, reply(403, 'Relaying Forbidden'));
    assert.equal(sip.branchFlags, 0);
  });
});

describe('routing script: in-dialog requests, CANCEL, Route and Request-URI', () => {
  test('with a To tag and a Route set through us: relayed by that route', async () => {
    for (const method of ['BYE', 'ACK', 'INVITE', 'INFO']) {
      const { action } = await route(request(method, { toTag: true, headers: ['Route: <sip:192.0.2.1;lr>'] }), { routed: true });
      assert.deepEqual(action, { kind: 'relay', targets: null, taps: [] }, method);
    }
  });

  test('with a To tag but no route through us: an ACK is absorbed, anything else is 404', async () => {
    assert.deepEqual((await route(request('ACK', { toTag: true }))).action, { kind: 'drop' });
    assert.deepEqual((await route(request('BYE', { toTag: true }))).action, reply(404, 'Not Here'));
  });

  test('in-dialog requests are not challenged, even from a stranger', async () => {
    const { sip } = await route(request('INVITE', { toTag: true }), { routed: true });
    assert.deepEqual(sip.calls, []);
  });

  test('CANCEL: relayed (the core matches it to its INVITE), without authentication', async () => {
    const { action, sip } = await route(request('CANCEL'));
    assert.deepEqual(action, { kind: 'relay', targets: null, taps: [] });
    assert.deepEqual(sip.calls, []);
  });

  test('an initial request with a Route set going further than us: 403 Preload Route denied', async () => {
    const req = request('INVITE', { headers: ['Route: <sip:elsewhere.example;lr>'] });
    assert.deepEqual((await route(req, { routed: true, authorizedAs: 'alice', targets: BOB })).action, reply(403, 'Preload Route denied'));
  });

  test('an initial request whose Route named only us (outbound proxy): routed as if it had none', async () => {
    const { action } = await route(request('INVITE'), { routed: true, authorizedAs: 'alice', targets: BOB });
    assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [] });
  });

  test('a top Route naming someone else (nothing consumed): 403 Preload Route denied too', async () => {
    const req = request('INVITE', { headers: ['Route: <sip:elsewhere.example;lr>'] });
    assert.deepEqual((await route(req, { routed: false, authorizedAs: 'alice', targets: BOB })).action, reply(403, 'Preload Route denied'));
  });

  test('a Request-URI that is not ours: 403 Relaying Forbidden, before any challenge', async () => {
    const { action, sip } = await route(request('INVITE', { uri: 'sip:bob@elsewhere.example' }), { myself: false });
    assert.deepEqual(action, reply(403, 'Relaying Forbidden'));
    assert.deepEqual(sip.calls, []);
  });
});

describe('routing script: route[AUTH]', () => {
  for (const method of ['INVITE', 'MESSAGE', 'SUBSCRIBE', 'REFER']) {
    test(`${method} from a stranger without valid credentials: the challenge, nothing looked up`, async () => {
      const { action, sip } = await route(request(method), { targets: BOB });
      assert.deepEqual(action, CHALLENGE);
      assert.deepEqual(sip.calls, ['removeIdentity', 'proxyAuthorize', 'proxyChallenge']);
      assert.equal(sip.trusted, false);
    });
  }

  test('authenticated as another user than From: 403 Forbidden auth ID, credentials kept, no identity asserted', async () => {
    const { action, sip } = await route(request('INVITE', { from: 'alice' }), { authorizedAs: 'carol', targets: BOB });
    assert.deepEqual(action, reply(403, 'Forbidden auth ID'));
    assert.deepEqual(sip.calls, ['removeIdentity', 'proxyAuthorize', 'forbidAuthId']);
    assert.equal(sip.trusted, false);
  });

  test('authenticated as the From user: credentials consumed, identity asserted, trusted, relayed', async () => {
    for (const method of ['INVITE', 'MESSAGE', 'SUBSCRIBE', 'REFER']) {
      const { action, sip } = await route(request(method, { from: 'alice' }), { authorizedAs: 'alice', targets: BOB });
      assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [] }, method);
      assert.deepEqual(sip.calls, ['removeIdentity', 'proxyAuthorize', 'consumeCredentials', 'assertIdentity alice', 'lookup bob'], method);
      assert.equal(sip.trusted, true);
    }
  });

  test('a From user written with escapes is compared unescaped', async () => {
    const { action } = await route(request('INVITE', { from: 'al%69ce' }), { authorizedAs: 'alice', targets: BOB });
    assert.equal(action.kind, 'relay');
  });

  test('a trusted peer passes without credentials: trusted, no challenge, its identity headers kept', async () => {
    const { action, sip } = await route(request('INVITE', { from: '+15551234' }), { trustedPeer: true, targets: BOB });
    assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [] });
    assert.deepEqual(sip.calls, ['lookup bob']);
    assert.equal(sip.trusted, true);
  });

  test('OPTIONS to the gateway itself (no user): 200 without authentication; other methods there 404', async () => {
    const { action, sip } = await route(request('OPTIONS', { uri: `sip:${DOMAIN}` }));
    assert.deepEqual(action, reply(200));
    assert.deepEqual(sip.calls, []);
    assert.deepEqual((await route(request('NOTIFY', { uri: `sip:${DOMAIN}` }))).action, reply(404, 'Not Found'));
  });

  test('OPTIONS and NOTIFY to a user: no authentication asked, relayed to the user', async () => {
    for (const method of ['OPTIONS', 'NOTIFY']) {
      const { action, sip } = await route(request(method), { targets: BOB });
      assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [] }, method);
      assert.deepEqual(sip.calls, ['lookup bob'], method);
      assert.equal(sip.trusted, false);
    }
  });
});

describe('routing script: calls to users', () => {
  const alice = { authorizedAs: 'alice' } as const;

  test('lookup: not a user of ours 404, not registered now 480, registered: relayed to its contacts', async () => {
    assert.deepEqual((await route(request('INVITE'), { ...alice, targets: null })).action, reply(404, 'Not Found'));
    assert.deepEqual((await route(request('INVITE'), { ...alice, targets: [] })).action, reply(480, 'Temporarily Unavailable'));
    assert.deepEqual((await route(request('INVITE'), { ...alice, targets: BOB })).action, { kind: 'relay', targets: BOB, taps: [] });
  });

  test('the Request-URI user is looked up unescaped', async () => {
    const { sip } = await route(request('INVITE', { uri: `sip:b%6Fb@${DOMAIN}` }), { ...alice, targets: BOB });
    assert.ok(sip.calls.includes('lookup bob'));
  });

  const TAP = 'start ws://127.0.0.1:9000/tap mixed 16k {"call":"1"}';

  test('X-Audio-Stream: the tap goes with the relay when the policy allows it', async () => {
    const { action, sip } = await route(request('INVITE', { headers: [`X-Audio-Stream: ${TAP}`] }), { ...alice, targets: BOB, mayTap: true });
    assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [TAP] });
    assert.ok(sip.calls.includes(`mayTap ${TAP}`));
  });

  test('X-Audio-Stream refused by the policy: the call goes on untapped, the caller told nothing', async () => {
    const { action } = await route(request('INVITE', { headers: [`X-Audio-Stream: ${TAP}`] }), { ...alice, targets: BOB, mayTap: false });
    assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [] });
  });

  test('X-Audio-Stream on a MESSAGE: no tap, the policy is not even asked', async () => {
    const { action, sip } = await route(request('MESSAGE', { headers: [`X-Audio-Stream: ${TAP}`] }), { ...alice, targets: BOB, mayTap: true });
    assert.deepEqual(action, { kind: 'relay', targets: BOB, taps: [] });
    assert.equal(sip.calls.some((c) => c.startsWith('mayTap')), false);
  });
});

describe('routing script: wsbridge', () => {
  const uri = (headers: string[]): SipRequest => request('INVITE', { uri: `sip:wsbridge@${DOMAIN}`, headers });
  const WS = 'ws://127.0.0.1:9000/bridge?id=1';

  test('without P-wsbridge-websocket-uri: 400', async () => {
    assert.deepEqual((await route(uri([]), { authorizedAs: 'alice', mayTap: true })).action, reply(400, 'Missing P-wsbridge-websocket-uri'));
  });

  test('a URL the policy refuses (or an untrusted caller): a plain 503, nothing looked up', async () => {
    const { action, sip } = await route(uri([`P-wsbridge-websocket-uri: ${encodeURIComponent(WS)}`]), { authorizedAs: 'alice', mayTap: false });
    assert.deepEqual(action, reply(503, 'Service Unavailable'));
    assert.ok(sip.calls.includes(`mayTap ${WS}`), 'the policy is asked about the decoded URL');
    assert.equal(sip.calls.some((c) => c.startsWith('lookup')), false);
  });

  test('allowed: answered locally into wsbridge with the decoded headers, defaults for the rest', async () => {
    const headers = '{"X-Call":"a b"}';
    const { action } = await route(uri([`P-wsbridge-websocket-uri: ${encodeURIComponent(WS)}`, `P-wsbridge-websocket-headers: ${encodeURIComponent(headers)}`]), { authorizedAs: 'alice', mayTap: true });
    assert.deepEqual(action, { kind: 'local', app: 'wsbridge', params: { uri: WS, headers, contentType: 'audio/l16;rate=16000' } });
    const typed = await route(uri([`P-wsbridge-websocket-uri: ${WS}`, 'P-wsbridge-websocket-content-type: audio%2Fl16%3Brate%3D8000', 'P-wsbridge-websocket-headers: %zz']), { trustedPeer: true, mayTap: true });
    assert.deepEqual(typed.action, { kind: 'local', app: 'wsbridge', params: { uri: WS, headers: '%zz', contentType: 'audio/l16;rate=8000' } }, 'a bad escape is taken as written');
  });

  test('a stranger calling wsbridge is challenged first', async () => {
    assert.deepEqual((await route(uri([`P-wsbridge-websocket-uri: ${WS}`]), { mayTap: true })).action, CHALLENGE);
  });
});

describe('routing script: branch route (media modes per leg)', () => {
  /** route{} for a call from `from`, then branch_route for a branch to `to` the way the core would. */
  async function leg(from: TransportKind, to: 'udp' | 'ws saved' | 'ws flow'): Promise<{ media: unknown; flags: number }> {
    const t = to === 'udp' ? target('sip:bob@192.0.2.20:5060') : to === 'ws saved' ? target('sip:bob@x.invalid;transport=ws', DST_WS) : target('sip:bob@192.0.2.30:5060');
    const { sip } = await route(request('INVITE', { transport: from }), { authorizedAs: 'alice', targets: [t] });
    const branch = fakeBranch(t, to === 'ws flow');
    script.branch!(sip, branch);
    return { media: branch.media, flags: branch.flags };
  }

  test('WS caller to a UDP phone: RTP towards the phone, WebRTC back to the browser', async () => {
    assert.deepEqual(await leg('ws', 'udp'), { media: { offer: 'rtp', answer: 'webrtc' }, flags: 0 });
    assert.deepEqual(await leg('wss', 'udp'), { media: { offer: 'rtp', answer: 'webrtc' }, flags: 0 });
  });

  test('UDP caller to a WS client (flag saved at REGISTER, or the branch goes over a WebSocket): WebRTC towards it, RTP back', async () => {
    assert.deepEqual(await leg('udp', 'ws saved'), { media: { offer: 'webrtc', answer: 'rtp' }, flags: DST_WS });
    assert.deepEqual(await leg('udp', 'ws flow'), { media: { offer: 'webrtc', answer: 'rtp' }, flags: DST_WS });
  });

  test('WS to WS: each side keeps its kind; UDP to UDP: plain RTP both ways', async () => {
    assert.deepEqual(await leg('ws', 'ws saved'), { media: { offer: 'same', answer: 'same' }, flags: DST_WS });
    assert.deepEqual(await leg('udp', 'udp'), { media: { offer: 'rtp', answer: 'rtp' }, flags: 0 });
  });
});

describe('routing script: failure route', () => {
  test('no answer (408) or unreachable (503): 480 Temporarily Unavailable; other failures pass as they are', async () => {
    const req = request('INVITE');
    const sip = new FakeScriptContext(req, {});
    const fail = (status: number) => script.failure!(sip, { status, response: makeResponse(req, status) });
    assert.deepEqual(await fail(408), reply(480, 'Temporarily Unavailable'));
    assert.deepEqual(await fail(503), reply(480, 'Temporarily Unavailable'));
    for (const status of [404, 480, 486, 487, 500, 603]) assert.equal(await fail(status), null, String(status));
  });
});
