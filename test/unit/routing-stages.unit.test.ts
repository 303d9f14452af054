/**
 * server/routing/stages.ts: a script's stages run before its route (drachtio's use()), may
 * answer first (a 407 challenge) or mark the context for what follows, and a SipError thrown
 * anywhere becomes the reply it names; server/media/flags.ts: a media mode that is not one
 * is refused by name.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkMediaFlags, MediaModeError, parseFlags, type MediaFlags } from '../../server/media/flags.js';
import type { Action, RequestContext, RoutingScript, Stage } from '../../server/routing/api.js';
import { runRequest, use } from '../../server/routing/stages.js';
import { SipError } from '../../server/sip/errors.js';

/** The part of the script's context the runner and these stages use. */
function fakeContext(): RequestContext {
  const ctx = {
    authUser: null as string | null,
    reply: (status: number, reason?: string, headers?: [string, string][]): Action => ({ kind: 'reply', status, ...(reason !== undefined && { reason }), ...(headers !== undefined && { headers }) }),
    relay: (): Action => ({ kind: 'relay', targets: null, taps: [] }),
  };
  // the runner reaches only reply(); the rest of RequestContext is the proxy's
  return ctx as unknown as RequestContext;
}

const route: RoutingScript = { request: (sip) => (sip.authUser ? sip.relay() : sip.reply(403, 'Forbidden')) };

describe('routing stages', () => {
  test('stages run in order before the route, and a mark set by one is seen by the route', async () => {
    const seen: string[] = [];
    const count: Stage = (_ctx, next) => {
      seen.push('count');
      return next();
    };
    const auth: Stage = async (ctx, next) => {
      seen.push('auth');
      ctx.authUser = 'alice';
      return next();
    };
    const action = await runRequest(use(route, count, auth), fakeContext());
    assert.deepEqual(seen, ['count', 'auth']);
    assert.equal(action.kind, 'relay');
  });

  test('a stage answers first: a 407 challenge with its header, the route never runs', async () => {
    let routed = false;
    const challenge: Stage = (ctx) => ctx.reply(407, 'Proxy Authentication Required', [['Proxy-Authenticate', 'Digest realm="gw", nonce="n"']]);
    const action = await runRequest(use({ request: (sip) => ((routed = true), sip.relay()) }, challenge), fakeContext());
    assert.deepEqual(action, { kind: 'reply', status: 407, reason: 'Proxy Authentication Required', headers: [['Proxy-Authenticate', 'Digest realm="gw", nonce="n"']] });
    assert.equal(routed, false);
  });

  test('a SipError thrown by a stage or the route becomes its reply; other errors go up', async () => {
    const limit: Stage = () => {
      throw new SipError(503, 'Over Capacity', [['Retry-After', '5']]);
    };
    assert.deepEqual(await runRequest(use(route, limit), fakeContext()), { kind: 'reply', status: 503, reason: 'Over Capacity', headers: [['Retry-After', '5']] });
    const thrower: RoutingScript = {
      request: () => {
        throw new SipError(404, 'Nobody Here');
      },
    };
    assert.deepEqual(await runRequest(thrower, fakeContext()), { kind: 'reply', status: 404, reason: 'Nobody Here' });
    await assert.rejects(runRequest({ request: () => { throw new TypeError('bug'); } }, fakeContext()), TypeError);
  });

  test('a stage calling next() twice is an error, not a request routed twice', async () => {
    const twice: Stage = async (_ctx, next) => {
      await next();
      return next();
    };
    await assert.rejects(runRequest(use({ request: (sip) => sip.relay() }, twice), fakeContext()), /next\(\) twice/);
  });
});

describe('media modes', () => {
  test('each mode names the kind of leg the SDP goes to', () => {
    assert.equal(parseFlags('rtp').kind, 'rtp');
    assert.equal(parseFlags('webrtc').kind, 'webrtc');
    assert.equal(parseFlags('same').kind, null);
    assert.equal(parseFlags(null).kind, null);
  });

  test('a mode that is not one is refused by name (a JavaScript script skips the compiler)', () => {
    assert.throws(() => parseFlags('RTP/AVP ICE=remove'), (e: unknown) => e instanceof MediaModeError && /"RTP\/AVP ICE=remove"/.test(e.message));
    assert.throws(() => checkMediaFlags({ offer: 'rtp', answer: 'webrct' } as unknown as MediaFlags), /unknown media mode "webrct"/);
    assert.deepEqual(checkMediaFlags({ offer: 'rtp', answer: 'webrtc' }), { offer: 'rtp', answer: 'webrtc' });
  });
});
