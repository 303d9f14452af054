/** server/net/web-origin.ts and the API token comparison: Host (DNS rebinding) and Origin decisions. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tokenMatches } from '../../server/http/access.js';
import { hostAllowed, hostName, originAllowed } from '../../server/net/web-origin.js';

test('hostName strips the port and IPv6 brackets', () => {
  assert.equal(hostName('GW.example.com:8080'), 'gw.example.com');
  assert.equal(hostName('[::1]:8080'), '::1');
  assert.equal(hostName('127.0.0.1'), '127.0.0.1');
});

test('with no allowed hosts any Host passes; with some, only those, IP literals and localhost', () => {
  assert.equal(hostAllowed('evil.example', []), true);
  const allowed = ['gw.example.com'];
  assert.equal(hostAllowed('gw.example.com:8080', allowed), true);
  assert.equal(hostAllowed('GW.EXAMPLE.COM.', allowed), true);
  assert.equal(hostAllowed('127.0.0.1:8080', allowed), true);
  assert.equal(hostAllowed('[::1]:8080', allowed), true);
  assert.equal(hostAllowed('localhost:8080', allowed), true);
  assert.equal(hostAllowed('evil.example', allowed), false);
  assert.equal(hostAllowed('gw.example.com.evil.example', allowed), false);
  assert.equal(hostAllowed(undefined, allowed), false);
});

test('an Origin passes when absent, of the same host, or listed', () => {
  assert.equal(originAllowed(undefined, '10.0.0.5:8080', []), true);
  assert.equal(originAllowed('http://10.0.0.5:8080', '10.0.0.5:8080', []), true);
  assert.equal(originAllowed('https://gw.example.com', 'gw.example.com', []), true);
  assert.equal(originAllowed('http://evil.example', '10.0.0.5:8080', []), false);
  assert.equal(originAllowed('http://10.0.0.5:9999', '10.0.0.5:8080', []), false);
  assert.equal(originAllowed('null', '10.0.0.5:8080', []), false);
  assert.equal(originAllowed('https://app.example.com', '10.0.0.5:8080', ['https://app.example.com/']), true);
  assert.equal(originAllowed('file://', '10.0.0.5:8080', []), false);
  assert.equal(originAllowed('https://gw.example.com', '127.0.0.1:8080', [], ['gw.example.com']), true, 'one of our names, Host rewritten by a proxy');
  assert.equal(originAllowed('https://evil.example', '127.0.0.1:8080', [], ['gw.example.com']), false);
});

test('tokens compare equal only when equal, whatever their lengths', () => {
  assert.equal(tokenMatches('s3cret-token', 's3cret-token'), true);
  assert.equal(tokenMatches('s3cret-toke', 's3cret-token'), false);
  assert.equal(tokenMatches('', 's3cret-token'), false);
});
