/** server/sip/address.ts: name-addr / addr-spec with header parameters (RFC 3261 §20.10, §25.1). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { projectRoot } from '../../server/paths.js';
import { formatNameAddr, parseNameAddr, tagOf } from '../../server/sip/address.js';
import { SipParseError } from '../../server/sip/errors.js';
import { formatUri, parseUri } from '../../server/sip/uri.js';

/** The value of header `name` (first line only) in an RFC 4475 message. */
function fixtureHeader(file: string, name: string): string {
  const text = fs.readFileSync(path.join(projectRoot, 'test', 'fixtures', 'rfc4475', `${file}.dat`), 'latin1');
  const line = text.split('\r\n').find((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'));
  assert.ok(line, `${file} has a ${name} header`);
  return line.slice(line.indexOf(':') + 1).trim();
}

describe('parseNameAddr', () => {
  it('a quoted display name, the URI in <>, and a tag', () => {
    const a = parseNameAddr('"Bob Smith" <sip:bob@biloxi.com>;tag=a6c85cf');
    assert.equal(a.display, 'Bob Smith');
    assert.equal(a.uri.user, 'bob');
    assert.equal(a.uri.host, 'biloxi.com');
    assert.equal(a.uriText, 'sip:bob@biloxi.com');
    assert.equal(tagOf(a), 'a6c85cf');
  });

  it('quoted display names keep commas, angle brackets and escaped quotes and backslashes', () => {
    assert.equal(parseNameAddr('"Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423').display, 'Bell, Alexander');
    assert.equal(parseNameAddr('"<not a uri>" <sip:x@example.com>').display, '<not a uri>');
    assert.equal(parseNameAddr('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>').display, 'J Rosenberg \\"');
    assert.equal(parseNameAddr('"Quoted string \\"\\"" <sip:jdrosen@example.com>').display, 'Quoted string ""');
    assert.equal(parseNameAddr('"" <sip:x@example.com>').display, '');
  });

  it('quoted display names with UTF-8 (as latin1 binary text) survive', () => {
    const text = Buffer.from('"Zoë Ångström" <sip:zoe@example.com>', 'utf8').toString('latin1');
    const a = parseNameAddr(text);
    assert.equal(Buffer.from(a.display!, 'latin1').toString('utf8'), 'Zoë Ångström');
  });

  it('token display names, one word or several, with or without space before < (RFC 4475 lwsdisp)', () => {
    assert.equal(parseNameAddr('Bob <sip:bob@biloxi.com>').display, 'Bob');
    assert.equal(parseNameAddr('A.   Bell <sip:a.g.bell@example.com>;tag=qweoiqpe').display, 'A. Bell');
    assert.equal(parseNameAddr('caller<sip:caller@example.com>;tag=323').display, 'caller');
  });

  it('no display name', () => {
    const a = parseNameAddr('<sip:alice@atlanta.com>;tag=1928301774');
    assert.equal(a.display, null);
    assert.equal(a.uri.user, 'alice');
    assert.equal(tagOf(a), '1928301774');
    assert.equal(tagOf(parseNameAddr('<sip:bob@biloxi.com>')), null);
  });

  it('addr-spec form: the parameters after the URI are header parameters (RFC 4475 cparam01)', () => {
    const a = parseNameAddr('sip:+19725552222@gw1.example.net;unknownparam');
    assert.equal(a.display, null);
    assert.equal(formatUri(a.uri), 'sip:+19725552222@gw1.example.net');
    assert.equal(a.uri.params.size, 0);
    assert.deepEqual([...a.params], [['unknownparam', null]]);
    const b = parseNameAddr('sip:j.user@example.com;tag=43251j3j324');
    assert.equal(tagOf(b), '43251j3j324');
    assert.equal(b.uri.params.size, 0);
  });

  it('inside <> the parameters belong to the URI (RFC 4475 cparam02)', () => {
    const a = parseNameAddr('<sip:+19725552222@gw1.example.net;unknownparam>');
    assert.deepEqual([...a.uri.params], [['unknownparam', null]]);
    assert.equal(a.params.size, 0);
  });

  it('header parameters: LWS around ; and =, values, quoted values, q and expires', () => {
    const a = parseNameAddr('<sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33 ; +sip.instance="<urn:uuid:f81d4fae>"');
    assert.deepEqual([...a.params], [
      ['newparam', 'newvalue'],
      ['secondparam', null],
      ['q', '0.33'],
      ['+sip.instance', '"<urn:uuid:f81d4fae>"'],
    ]);
    assert.equal(parseNameAddr('<sip:a@b.example.com>;Expires=60').params.get('expires'), '60');
  });

  it('URIs with headers in <> (RFC 4475 regescrt), and tel URIs', () => {
    const a = parseNameAddr('<sip:user@example.com?Route=%3Csip:sip.example.com%3E>');
    assert.equal(a.uri.headers, 'Route=%3Csip:sip.example.com%3E');
    const t = parseNameAddr('<tel:+15551234567>;tag=9');
    assert.equal(t.uri.scheme, 'tel');
    assert.equal(tagOf(t), '9');
  });

  it('refuses the RFC 4475 addresses that break the grammar', () => {
    // badaspec: LWS inside <>
    assert.throws(() => parseNameAddr(fixtureHeader('badaspec', 'To')), SipParseError);
    // baddn: an unquoted display name with a comma
    assert.throws(() => parseNameAddr(fixtureHeader('baddn', 'From')), SipParseError);
    assert.throws(() => parseNameAddr(fixtureHeader('baddn', 'To')), SipParseError);
    // quotbal: no closing quote
    assert.throws(() => parseNameAddr(fixtureHeader('quotbal', 'To')), SipParseError);
    // regbadct: an addr-spec holding '?' must be in <> (RFC 3261 §20)
    assert.throws(() => parseNameAddr(fixtureHeader('regbadct', 'Contact')), SipParseError);
  });

  it('refuses other malformed addresses', () => {
    for (const s of [
      '',
      '<sip:bob@biloxi.com',
      '"Bob" sip:bob@biloxi.com',
      '"Bob <sip:bob@biloxi.com>',
      '<sip:bob@biloxi.com>junk',
      '<sip:bob@biloxi.com>;',
      '<sip:bob@biloxi.com>;tag=',
      '<sip:bob@biloxi.com>;tag="unterminated',
      'sip:a@b.example.com, sip:c@d.example.com',
      'Bob@Home <sip:bob@biloxi.com>',
      '<not a uri>',
    ]) {
      assert.throws(() => parseNameAddr(s), SipParseError, JSON.stringify(s));
    }
  });
});

describe('formatNameAddr', () => {
  it('quotes the display name and re-parses to the same address', () => {
    const params = new Map<string, string | null>([['tag', 'abc'], ['lr', null]]);
    const text = formatNameAddr({ display: 'Doe, "JD" \\ John', uri: parseUri('sip:jd@example.com;transport=ws'), params });
    const back = parseNameAddr(text);
    assert.equal(back.display, 'Doe, "JD" \\ John');
    assert.equal(formatUri(back.uri), 'sip:jd@example.com;transport=ws');
    assert.deepEqual([...back.params], [['tag', 'abc'], ['lr', null]]);
  });

  it('without a display name, writes just <uri>', () => {
    assert.equal(formatNameAddr({ uri: 'sip:a@example.com' }), '<sip:a@example.com>');
    assert.equal(formatNameAddr({ display: null, uri: 'sip:a@example.com', params: new Map([['tag', '1']]) }), '<sip:a@example.com>;tag=1');
  });
});
