/** server/sip/via.ts: the Via header (RFC 3261 §20.42, §25.1; received/rport of RFC 3581). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { formatVia, MAGIC_COOKIE, parseVia, viaBranch } from '../../server/sip/via.js';
import { SipParseError } from '../../server/sip/errors.js';
import { newBranch } from '../../server/sip/ids.js';

describe('parseVia', () => {
  it('reads protocol, version, transport, sent-by and branch', () => {
    const v = parseVia('SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds');
    assert.equal(v.protocol, 'SIP');
    assert.equal(v.version, '2.0');
    assert.equal(v.transport, 'UDP');
    assert.equal(v.host, 'pc33.atlanta.com');
    assert.equal(v.port, 5066);
    assert.equal(viaBranch(v), 'z9hG4bK776asdhds');
    assert.ok(viaBranch(v)!.startsWith(MAGIC_COOKIE));
  });

  it('LWS around the slashes, before the port colon, and around ; and = (RFC 4475 wsinv)', () => {
    const v = parseVia('SIP  /   2.0 /UDP 192.0.2.2 : 5070 ;  branch  =   z9hG4bK9ikj8 ;rport');
    assert.equal(v.transport, 'UDP');
    assert.equal(v.host, '192.0.2.2');
    assert.equal(v.port, 5070);
    assert.equal(viaBranch(v), 'z9hG4bK9ikj8');
    assert.ok(v.params.has('rport'));
  });

  it('protocol and transport are case-insensitive (written upper-case); the host lower-case', () => {
    const v = parseVia('sip/2.0/udp Host.Example.COM;branch=z9hG4bKA');
    assert.equal(v.protocol, 'SIP');
    assert.equal(v.transport, 'UDP');
    assert.equal(v.host, 'host.example.com');
    assert.equal(viaBranch(v), 'z9hG4bKA', 'the branch keeps its case');
  });

  it('rport without a value (RFC 3581 §3), and with the value a server stamps', () => {
    const asked = parseVia('SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKx');
    assert.equal(asked.params.get('rport'), null);
    assert.ok(asked.params.has('rport'));
    const stamped = parseVia('SIP/2.0/UDP 10.0.0.1:5060;received=192.0.2.9;rport=61000;branch=z9hG4bKx');
    assert.equal(stamped.params.get('rport'), '61000');
    assert.equal(stamped.params.get('received'), '192.0.2.9');
    assert.equal(parseVia('SIP/2.0/UDP h.example.com;branch=z9hG4bKx').params.has('rport'), false);
  });

  it('IPv6 sent-by, with and without port, and an IPv6 received', () => {
    const v = parseVia('SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKv6;received=2001:db8::9:255;rport');
    assert.equal(v.host, '[2001:db8::9:1]');
    assert.equal(v.port, 5070);
    assert.equal(v.params.get('received'), '2001:db8::9:255');
    assert.equal(parseVia('SIP/2.0/TCP [::1];branch=z9hG4bKv6').port, null);
  });

  it('WebSocket transports with a .invalid host (RFC 7118 §5.2)', () => {
    const v = parseVia('SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKnashds7');
    assert.equal(v.transport, 'WSS');
    assert.equal(v.host, 'df7jal23ls0d.invalid');
  });

  it('unknown transports and extension parameters (RFC 4475 transports)', () => {
    const v = parseVia('SIP/2.0/UNKNOWN t3.example.com;branch=z9hG4bKasdf;maddr=224.2.0.1;ttl=16;x-ext="quoted value"');
    assert.equal(v.transport, 'UNKNOWN');
    assert.equal(v.params.get('maddr'), '224.2.0.1');
    assert.equal(v.params.get('ttl'), '16');
    assert.equal(v.params.get('x-ext'), '"quoted value"');
  });

  it('an RFC 2543 Via without branch', () => {
    const v = parseVia('SIP/2.0/UDP iftgw.example.com');
    assert.equal(viaBranch(v), null);
    assert.equal(v.params.size, 0);
  });

  it('refuses malformed values', () => {
    for (const s of [
      '',
      'SIP/2.0/UDP',
      'SIP/2.0 UDP host.example.com',
      'SIP/2.0/UDP host.example.com:99999',
      'SIP/2.0/UDP host.example.com:50a',
      'SIP/2.0/UDP -host.example.com',
      'SIP/2.0/UDP host..example.com',
      'SIP/2.0/UDP [::1;branch=z9hG4bKx',
      'SIP/2.0/UDP 192.0.2.15;;,;,,',
      'SIP/2.0/UDP host.example.com;',
      'SIP/2.0/UDP host.example.com;branch=',
      'SIP/2.0/UDP host.example.com;branch=z9hG4bKx junk',
      'SIP/2.0/UDPhost.example.com',
    ]) {
      assert.throws(() => parseVia(s), SipParseError, JSON.stringify(s));
    }
  });
});

describe('formatVia', () => {
  it('writes a canonical Via that parses back to the same thing', () => {
    const v = parseVia('sip / 2.0 / udp  [2001:DB8::1] : 5060 ; branch = z9hG4bKq ; rport');
    const text = formatVia(v);
    assert.equal(text, 'SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKq;rport');
    assert.deepEqual(parseVia(text), v);
  });

  it('stamps received and rport the way a server does (RFC 3581 §4)', () => {
    const v = parseVia('SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport');
    v.params.set('received', '192.0.2.9');
    v.params.set('rport', '61000');
    assert.equal(formatVia(v), 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport=61000;received=192.0.2.9');
  });
});

describe('newBranch', () => {
  it('starts with the magic cookie, is a token, and differs each time (RFC 3261 §8.1.1.7)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const b = newBranch();
      assert.ok(b.startsWith(MAGIC_COOKIE) && b.length > MAGIC_COOKIE.length);
      assert.equal(viaBranch(parseVia(`SIP/2.0/UDP h.example.com;branch=${b}`)), b);
      seen.add(b);
    }
    assert.equal(seen.size, 1000);
  });
});
