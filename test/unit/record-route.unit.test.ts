/**
 * server/proxy/record-route.ts and flow-token.ts: Record-Route entries (RFC 3261 §16.6 step 4, double
 * Record-Route of RFC 5658) carrying flow tokens that lead in-dialog requests back to a
 * WebSocket connection or a UDP address behind NAT (signed: only ours are read).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { randomBytes } from 'node:crypto';
import { FlowTokens } from '../../server/proxy/flow-token.js';
import { recordRoutes, recordRouteUri } from '../../server/proxy/record-route.js';
import type { SipInterface } from '../../server/sip/transport/transport-layer.js';
import { parseNameAddr } from '../../server/sip/address.js';
import { parseUri } from '../../server/sip/uri.js';

const tokens = new FlowTokens(randomBytes(32));
const flowToken = tokens.mint.bind(tokens);
const destinationFromToken = tokens.read.bind(tokens);

const UDP_IF: SipInterface = { transport: 'udp', host: '192.0.2.1', port: 5060 };
const WS_IF: SipInterface = { transport: 'ws', host: '192.0.2.1', port: 8080 };
const UDP6_IF: SipInterface = { transport: 'udp', host: '[2001:db8::1]', port: 5060 };

describe('flow tokens', () => {
  it('a WebSocket flow id round-trips, on the transport of the interface it was minted on', () => {
    const token = flowToken({ transport: 'ws', address: '198.51.100.7', port: 50123, flowId: 'lq3x9-1a' });
    assert.ok(token);
    assert.deepEqual(destinationFromToken(token, 'ws'), { transport: 'ws', address: '', port: 0, flowId: 'lq3x9-1a' });
    assert.equal(destinationFromToken(flowToken({ transport: 'wss', address: 'x', port: 1, flowId: 'f' })!, 'wss')?.transport, 'wss');
  });

  it('a UDP IPv4 address and port round-trip', () => {
    const token = flowToken({ transport: 'udp', address: '203.0.113.50', port: 61000 });
    assert.ok(token);
    assert.deepEqual(destinationFromToken(token, 'udp'), { transport: 'udp', address: '203.0.113.50', port: 61000 });
  });

  it('a UDP IPv6 address and port round-trip', () => {
    for (const address of ['2001:db8::dead:beef', '::1', '::ffff:192.0.2.9', 'fe80::1:2:3:4']) {
      const token = flowToken({ transport: 'udp', address, port: 5062 });
      assert.deepEqual(destinationFromToken(token!, 'ws'), { transport: 'udp', address, port: 5062 }, address);
    }
  });

  it('tokens are valid URI user parts, in a Record-Route that parses', () => {
    for (const token of [
      flowToken({ transport: 'ws', address: '', port: 0, flowId: 'lq3x9-1a' })!,
      flowToken({ transport: 'udp', address: '2001:db8::dead:beef', port: 65535 })!,
      flowToken({ transport: 'udp', address: '203.0.113.50', port: 61000 })!,
    ]) {
      const rr = parseNameAddr(recordRouteUri(WS_IF, token, true));
      assert.equal(rr.uri.user, token);
      assert.equal(destinationFromToken(rr.uri.user!, 'ws') !== null, true);
    }
  });

  it('a connection-oriented destination without a flow has no token', () => {
    assert.equal(flowToken({ transport: 'ws', address: '198.51.100.7', port: 50123 }), null);
    assert.equal(flowToken({ transport: 'tcp', address: '198.51.100.7', port: 5060, flowId: null }), null);
  });

  it('tokens we did not write (or sign) name nothing', () => {
    for (const bad of ['', 'w', 'x123', 'u', 'u' + Buffer.from('not an address').toString('base64url'), 'u' + Buffer.from('1.2.3.4 5060').toString('base64url'), 'wf-1', 'alice']) {
      assert.equal(destinationFromToken(bad, 'ws'), null, JSON.stringify(bad));
    }
  });
});

describe('recordRoutes', () => {
  it('one entry, without token or r2, when both sides use the same interface', () => {
    const rrs = recordRoutes(UDP_IF, null, UDP_IF, null);
    assert.deepEqual(rrs, ['<sip:192.0.2.1:5060;lr>']);
    const uri = parseNameAddr(rrs[0]!).uri;
    assert.ok(uri.params.has('lr'), 'loose routing');
    assert.equal(uri.user, null);
  });

  it('two entries when the request changes transport: the callee-facing one on top, each with r2=on', () => {
    const wsToken = flowToken({ transport: 'ws', address: '198.51.100.7', port: 50123, flowId: 'f-1' });
    // a browser (WS, inbound) calls a phone (UDP, outbound)
    const rrs = recordRoutes(WS_IF, wsToken, UDP_IF, null);
    assert.equal(rrs.length, 2);
    const [top, bottom] = rrs.map((r) => parseNameAddr(r).uri);
    // top: what the callee's route set starts with, reached over the callee's transport
    assert.equal(top!.port, 5060);
    assert.equal(top!.params.get('transport'), undefined);
    assert.equal(top!.user, null);
    // bottom: faces the caller, over WS, carrying the caller's flow
    assert.equal(bottom!.port, 8080);
    assert.equal(bottom!.params.get('transport'), 'ws');
    assert.equal(bottom!.user, wsToken);
    for (const u of [top!, bottom!]) {
      assert.equal(u.params.get('r2'), 'on');
      assert.ok(u.params.has('lr'));
    }
  });

  it('phone calls browser: the entry facing the browser (on top) carries its flow', () => {
    const wsToken = flowToken({ transport: 'ws', address: '198.51.100.7', port: 50123, flowId: 'f-2' });
    const [top, bottom] = recordRoutes(UDP_IF, null, WS_IF, wsToken).map((r) => parseNameAddr(r).uri);
    assert.equal(top!.params.get('transport'), 'ws');
    assert.equal(top!.user, wsToken);
    assert.equal(bottom!.params.get('transport'), undefined);
    assert.equal(destinationFromToken(top!.user!, 'ws')?.flowId, 'f-2');
  });

  it('a token on the same interface still doubles (each side keeps its own way back)', () => {
    const natToken = flowToken({ transport: 'udp', address: '203.0.113.50', port: 61000 });
    const rrs = recordRoutes(UDP_IF, natToken, UDP_IF, null);
    assert.equal(rrs.length, 2);
    assert.equal(parseNameAddr(rrs[1]!).uri.user, natToken);
    assert.equal(parseNameAddr(rrs[0]!).uri.user, null);
  });

  it('IPv6 interfaces are written in brackets', () => {
    const [rr] = recordRoutes(UDP6_IF, null, UDP6_IF, null);
    assert.equal(rr, '<sip:[2001:db8::1]:5060;lr>');
    assert.equal(parseUri(rr!.slice(1, -1)).host, '[2001:db8::1]');
  });
});
