/**
 * server/sip/reply.ts (responses built from requests, RFC 3261 §8.2.6) and
 * server/sip/requests.ts (CANCEL §9.1, ACK for a non-2xx §17.1.1.3).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { parseMessage } from '../../server/sip/parser.js';
import { SipRequest, SipResponse, type SipMessageAny } from '../../server/sip/message.js';
import { makeResponse, reasonPhrase } from '../../server/sip/reply.js';
import { buildAckForError, buildCancel } from '../../server/sip/requests.js';

function parse(lines: string[], body = ''): SipMessageAny {
  const r = parseMessage(Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body, 'latin1'));
  if (r.kind !== 'message') assert.fail(r.kind === 'error' ? r.error.message : r.kind);
  return r.message;
}

function req(lines: string[], body = ''): SipRequest {
  const m = parse(lines, body);
  assert.ok(m instanceof SipRequest);
  return m;
}

/** A proxied INVITE: two Vias, a Route set, a Timestamp, a body. */
const INVITE = [
  'INVITE sip:bob@192.0.2.4:5060;transport=udp SIP/2.0',
  'Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1',
  'Via: SIP/2.0/WSS df7jal23ls0d.invalid;received=192.0.2.9;rport=50000;branch=z9hG4bKua1',
  'Max-Forwards: 69',
  'Route: <sip:p1.example.com;lr>',
  'Route: <sip:p2.example.com;lr>',
  'From: "Alice" <sip:alice@example.com>;tag=1928301774',
  'To: Bob <sip:bob@example.com>',
  'Call-ID: a84b4c76e66710@pc33.example.com',
  'CSeq: 314159 INVITE',
  'Timestamp: 54.7',
  'Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>',
  'Content-Type: application/sdp',
];
const invite = (): SipRequest => req(INVITE, 'v=0\r\n');

/** Serializes and parses again: what the peer will read. */
function onWire<T extends SipMessageAny>(m: T): T {
  const r = parseMessage(m.toBuffer());
  if (r.kind !== 'message') assert.fail(r.kind === 'error' ? r.error.message : r.kind);
  return r.message as T;
}

describe('makeResponse', () => {
  it('copies every Via in order, From, Call-ID and CSeq, and the result is a valid response', () => {
    const r = onWire(makeResponse(invite(), 180));
    assert.ok(r instanceof SipResponse);
    assert.equal(r.status, 180);
    assert.equal(r.reason, 'Ringing');
    assert.deepEqual(r.getAll('via'), invite().getAll('via'));
    assert.equal(r.get('from'), '"Alice" <sip:alice@example.com>;tag=1928301774');
    assert.equal(r.callId(), 'a84b4c76e66710@pc33.example.com');
    assert.deepEqual(r.cseq(), { seq: 314159, method: 'INVITE' });
  });

  it('does not copy what belongs to the request only: Route, Max-Forwards, Contact, body', () => {
    const r = makeResponse(invite(), 486);
    for (const key of ['route', 'max-forwards', 'contact', 'content-type']) assert.equal(r.has(key), false, key);
    assert.equal(r.body.length, 0);
  });

  it('adds a To tag to responses other than 100 (§8.2.6.2), the same one when asked', () => {
    const r = makeResponse(invite(), 486);
    const tag = r.toTag();
    assert.ok(tag && tag.length > 0);
    assert.equal(r.to().uri.user, 'bob');
    assert.equal(r.to().display, 'Bob');
    assert.equal(makeResponse(invite(), 180, { toTag: 'fixed' }).toTag(), 'fixed');
    assert.equal(makeResponse(invite(), 200, { toTag: 'fixed' }).toTag(), 'fixed');
    assert.notEqual(makeResponse(invite(), 486).toTag(), makeResponse(invite(), 486).toTag(), 'fresh tags differ');
  });

  it('a 100 Trying has no To tag (§8.2.6.1) and echoes Timestamp', () => {
    const r = makeResponse(invite(), 100);
    assert.equal(r.toTag(), null);
    assert.equal(r.get('timestamp'), '54.7');
    assert.equal(r.reason, 'Trying');
  });

  it('Timestamp is in the 100 only', () => {
    for (const status of [180, 200, 486]) assert.equal(makeResponse(invite(), status).has('timestamp'), false, String(status));
  });

  it('keeps the To tag a request already has (in-dialog requests)', () => {
    const bye = req([
      'BYE sip:alice@192.0.2.9 SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKbye',
      'From: <sip:bob@example.com>;tag=b1',
      'To: <sip:alice@example.com>;tag=a1',
      'Call-ID: dlg@example.com',
      'CSeq: 2 BYE',
    ]);
    const r = makeResponse(bye, 200);
    assert.equal(r.toTag(), 'a1');
    assert.equal(r.getAll('to').length, 1);
  });

  it('toTag: null leaves To as it is', () => {
    assert.equal(makeResponse(invite(), 408, { toTag: null }).toTag(), null);
  });

  it('reason, extra headers and a body', () => {
    const r = onWire(makeResponse(invite(), 200, {
      reason: 'Fine',
      headers: [['Contact', '<sip:gw@192.0.2.1>'], ['allow', 'INVITE, ACK']],
      body: Buffer.from('v=0\r\n'),
      contentType: 'application/sdp',
    }));
    assert.equal(r.reason, 'Fine');
    assert.equal(r.contacts()[0]?.uri.host, '192.0.2.1');
    assert.equal(r.get('allow'), 'INVITE, ACK');
    assert.equal(r.contentType(), 'application/sdp');
    assert.equal(r.body.toString(), 'v=0\r\n');
    assert.equal(r.get('content-length'), '5');
  });

  it('compact header names in the request come back in full in the response', () => {
    const r = makeResponse(req([
      'OPTIONS sip:gw.example.com SIP/2.0',
      'v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc',
      'f: <sip:a@example.com>;tag=1',
      't: <sip:gw.example.com>',
      'i: c@192.0.2.1',
      'CSeq: 1 OPTIONS',
    ]), 200);
    const text = r.toString();
    for (const name of ['Via:', 'From:', 'To:', 'Call-ID:', 'CSeq:']) assert.ok(text.includes('\r\n' + name + ' '), name);
  });

  it('standard reason phrases', () => {
    assert.equal(reasonPhrase(200), 'OK');
    assert.equal(reasonPhrase(404), 'Not Found');
    assert.equal(reasonPhrase(481), 'Call/Transaction Does Not Exist');
    assert.equal(reasonPhrase(505), 'Version Not Supported');
    assert.equal(reasonPhrase(603), 'Decline');
  });
});

describe('buildCancel (§9.1)', () => {
  it('same Request-URI, Call-ID, From, To, CSeq number, a single Via (the top one, same branch), Route copied', () => {
    const inv = invite();
    const c = onWire(buildCancel(inv));
    assert.equal(c.method, 'CANCEL');
    assert.equal(c.uri, inv.uri);
    assert.equal(c.callId(), inv.callId());
    assert.equal(c.get('from'), inv.get('from'));
    assert.equal(c.get('to'), inv.get('to'));
    assert.deepEqual(c.cseq(), { seq: 314159, method: 'CANCEL' });
    assert.deepEqual(c.getAll('via'), [inv.getAll('via')[0]]);
    assert.equal(c.via().params.get('branch'), 'z9hG4bKproxy1');
    assert.deepEqual(c.getAll('route'), ['<sip:p1.example.com;lr>', '<sip:p2.example.com;lr>']);
    assert.equal(c.get('max-forwards'), '70');
    assert.equal(c.body.length, 0);
    assert.equal(c.has('contact'), false);
  });

  it('says why with a Reason header when given one (RFC 3326)', () => {
    const c = buildCancel(invite(), 'SIP;cause=200;text="Call completed elsewhere"');
    assert.equal(c.get('reason'), 'SIP;cause=200;text="Call completed elsewhere"');
    assert.equal(buildCancel(invite()).has('reason'), false);
  });
});

describe('buildAckForError (§17.1.1.3)', () => {
  it('same Request-URI, Call-ID, From, top Via (same branch) and Route; To from the response; CSeq number with ACK', () => {
    const inv = invite();
    const busy = makeResponse(inv, 486);
    const ack = onWire(buildAckForError(inv, busy));
    assert.equal(ack.method, 'ACK');
    assert.equal(ack.uri, inv.uri);
    assert.equal(ack.callId(), inv.callId());
    assert.equal(ack.get('from'), inv.get('from'));
    assert.deepEqual(ack.getAll('via'), [inv.getAll('via')[0]]);
    assert.equal(ack.via().params.get('branch'), 'z9hG4bKproxy1');
    assert.equal(ack.get('to'), busy.get('to'));
    assert.equal(ack.toTag(), busy.toTag());
    assert.ok(ack.toTag());
    assert.deepEqual(ack.cseq(), { seq: 314159, method: 'ACK' });
    assert.deepEqual(ack.getAll('route'), inv.getAll('route'));
    assert.equal(ack.body.length, 0);
  });

  it('works for a response as it arrives from the wire', () => {
    const inv = invite();
    const res = parse([
      'SIP/2.0 603 Decline',
      ...inv.getAll('via').map((v) => 'Via: ' + v),
      'From: "Alice" <sip:alice@example.com>;tag=1928301774',
      'To: Bob <sip:bob@example.com>;tag=8321234356',
      'Call-ID: a84b4c76e66710@pc33.example.com',
      'CSeq: 314159 INVITE',
    ]);
    assert.ok(res instanceof SipResponse);
    const ack = buildAckForError(inv, res);
    assert.equal(ack.toTag(), '8321234356');
  });
});
