/** server/sip/uri.ts: SIP and SIPS URIs (RFC 3261 §19.1, §25.1), other schemes kept opaque. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { formatUri, isIpLiteral, parseUri, socketHost, unescapeUri, uriTransport } from '../../server/sip/uri.js';
import { SipParseError } from '../../server/sip/errors.js';

describe('parseUri', () => {
  it('reads every part of a full SIP URI', () => {
    const u = parseUri('sip:alice:secretword@atlanta.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent');
    assert.equal(u.scheme, 'sip');
    assert.equal(u.user, 'alice');
    assert.equal(u.password, 'secretword');
    assert.equal(u.host, 'atlanta.com');
    assert.equal(u.port, 5061);
    assert.deepEqual([...u.params], [['transport', 'tcp'], ['lr', null]]);
    assert.equal(u.headers, 'subject=project%20x&priority=urgent');
    assert.equal(uriTransport(u), 'tcp');
  });

  it('a URI without user, port, params or headers', () => {
    const u = parseUri('sips:biloxi.com');
    assert.equal(u.scheme, 'sips');
    assert.equal(u.user, null);
    assert.equal(u.password, null);
    assert.equal(u.host, 'biloxi.com');
    assert.equal(u.port, null);
    assert.equal(u.params.size, 0);
    assert.equal(u.headers, null);
    assert.equal(uriTransport(u), null);
  });

  it('scheme, host and parameter names compare case-insensitively; the user part does not', () => {
    const u = parseUri('SIP:Alice@AtLanta.COM;Transport=TCP');
    assert.equal(u.scheme, 'sip');
    assert.equal(u.host, 'atlanta.com');
    assert.equal(u.user, 'Alice');
    assert.equal(uriTransport(u), 'tcp');
  });

  it('a user part with ; and ? belongs to the user (RFC 4475 semiuri)', () => {
    const u = parseUri('sip:user;par=u%40example.net@example.com');
    assert.equal(u.user, 'user;par=u%40example.net');
    assert.equal(unescapeUri(u.user!), 'user;par=u@example.net');
    assert.equal(u.host, 'example.com');
    assert.equal(u.params.size, 0);
    const q = parseUri('sip:who?ami@example.com');
    assert.equal(q.user, 'who?ami');
    assert.equal(q.headers, null);
  });

  it('telephone-subscriber users with visual separators', () => {
    const u = parseUri('sip:+1-212-555-1212:1234@gateway.com;user=phone');
    assert.equal(u.user, '+1-212-555-1212');
    assert.equal(u.password, '1234');
    assert.equal(u.params.get('user'), 'phone');
  });

  it('keeps escapes as written, and unescapes on request (RFC 3261 §19.1.4)', () => {
    const u = parseUri('sip:%61lice@atlanta.com');
    assert.equal(u.user, '%61lice');
    assert.equal(unescapeUri(u.user!), 'alice');
    assert.equal(unescapeUri('null-%00-null'), 'null-\u0000-null');
    assert.equal(unescapeUri('no-escapes'), 'no-escapes');
  });

  it('IPv4 and IPv6 hosts, with and without ports', () => {
    const v4 = parseUri('sip:bob@192.0.2.4:5070');
    assert.equal(v4.host, '192.0.2.4');
    assert.equal(v4.port, 5070);
    assert.ok(isIpLiteral(v4.host));
    const v6 = parseUri('sip:bob@[2001:DB8::10]:5070;transport=udp');
    assert.equal(v6.host, '[2001:db8::10]');
    assert.equal(v6.port, 5070);
    assert.equal(socketHost(v6.host), '2001:db8::10');
    assert.ok(isIpLiteral(v6.host));
    const bare6 = parseUri('sip:[::1]');
    assert.equal(bare6.host, '[::1]');
    assert.equal(bare6.port, null);
    const mapped = parseUri('sip:[::ffff:192.0.2.1]:5060');
    assert.equal(mapped.host, '[::ffff:192.0.2.1]');
    assert.equal(mapped.port, 5060);
    assert.ok(!isIpLiteral(parseUri('sip:example.com').host));
  });

  it('ports 0 and 65535 are in range', () => {
    assert.equal(parseUri('sip:h.example.com:0').port, 0);
    assert.equal(parseUri('sip:h.example.com:65535').port, 65535);
  });

  it('a fully qualified host with a trailing dot', () => {
    assert.equal(parseUri('sip:bob@example.com.').host, 'example.com.');
  });

  it('parameters with and without values, and escaped parameter text', () => {
    const u = parseUri('sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31');
    assert.deepEqual([...u.params], [['%6c%72', null], ['n%61me', 'v%61lue%25%34%31']]);
    const m = parseUri('sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15');
    assert.equal(m.params.get('maddr'), '239.255.255.1');
    assert.equal(m.params.get('ttl'), '15');
  });

  it('keeps other schemes opaque (tel, urn, and RFC 4475 unkscm/novelsc)', () => {
    const tel = parseUri('tel:+1-201-555-0123;phone-context=example.com');
    assert.equal(tel.scheme, 'tel');
    assert.equal(tel.opaque, '+1-201-555-0123;phone-context=example.com');
    assert.equal(formatUri(tel), 'tel:+1-201-555-0123;phone-context=example.com');
    assert.equal(parseUri('urn:service:sos').opaque, 'service:sos');
    assert.equal(parseUri('nobodyKnowsThisScheme:totallyopaquecontent').scheme, 'nobodyknowsthisscheme');
    assert.equal(parseUri('soap.beep://192.0.2.103:3002').scheme, 'soap.beep');
  });

  it('refuses bad hosts', () => {
    for (const s of [
      'sip:bob@',
      'sip:bob@-example.com',
      'sip:bob@example-.com',
      'sip:bob@exa..mple.com',
      'sip:bob@exa mple.com',
      'sip:bob@exam_ple.com',
      'sip:bob@[::1',
      'sip:bob@[]',
      'sip:bob@[::1]junk',
      'sip:bob@[1.2.3.4]',
      'sip:',
    ]) {
      assert.throws(() => parseUri(s), SipParseError, s);
    }
  });

  it('refuses bad ports', () => {
    for (const s of ['sip:bob@example.com:', 'sip:bob@example.com:65536', 'sip:bob@example.com:50x', 'sip:bob@example.com:5060:5060', 'sip:bob@[::1]:123456']) {
      assert.throws(() => parseUri(s), SipParseError, s);
    }
  });

  it('refuses bad users, parameters, headers and schemes', () => {
    for (const s of [
      'sip:@example.com',
      'sip:a%zzb@example.com',
      'sip:a b@example.com',
      'sip:a"b@example.com',
      'sip:bob@example.com;',
      'sip:bob@example.com;;lr',
      'sip:bob@example.com;maddr=',
      'sip:bob@example.com;a"b',
      'sip:bob@example.com?a=<b>',
      'sip:bob@example.com?a=%zz',
      'example.com',
      ':bob@example.com',
      '1sip:bob@example.com',
      '<sip:user@example.com>',
      ' sip:user@example.com',
      'tel:',
      'tel:+1 555',
    ]) {
      assert.throws(() => parseUri(s), SipParseError, s);
    }
  });
});

describe('formatUri', () => {
  it('writes back what it read', () => {
    for (const s of [
      'sip:alice@atlanta.com',
      'sips:alice:pw@atlanta.com:5061;transport=tcp;lr?subject=x&h=y',
      'sip:[2001:db8::10]:5070;transport=udp',
      'sip:user;par=u%40example.net@example.com',
      "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
      'sip:user@example.com?Route=%3Csip:sip.example.com%3E',
    ]) {
      assert.equal(formatUri(parseUri(s)), s);
    }
  });

  it('writes host and parameter names in their canonical case', () => {
    assert.equal(formatUri(parseUri('SIP:Bob@EXAMPLE.com;LR')), 'sip:Bob@example.com;lr');
  });

  it('writes a changed URI', () => {
    const u = parseUri('sip:bob@example.com');
    u.host = '192.0.2.7';
    u.port = 5080;
    u.params.set('transport', 'udp');
    assert.equal(formatUri(u), 'sip:bob@192.0.2.7:5080;transport=udp');
  });
});
