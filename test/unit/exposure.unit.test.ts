/** server/config/exposure.ts through buildConfig: what a configuration may expose, and the setting named when it may not. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildConfig, ConfigError } from '../../server/config/load.js';
import { guardNotice } from '../../server/security/notice.js';

function refusal(raw: object, env: NodeJS.ProcessEnv = {}): string {
  try {
    buildConfig(raw, env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  assert.fail('the configuration was accepted');
}

const users = [{ username: 'alice', password: 'a-long-password' }];

test('the embedded defaults start (the demo is fenced to private sources at run time)', () => {
  const cfg = buildConfig({});
  assert.equal(cfg.http.apiToken, null);
  assert.deepEqual(cfg.sip.trustedPeers, []);
  assert.equal(cfg.security.banTime, 600);
});

test('own users with the API on 0.0.0.0 and no token: refused, naming http.apiToken', () => {
  assert.match(refusal({ users }), /http\.apiToken: the API would be served on 0\.0\.0\.0 without a token/);
  assert.doesNotThrow(() => buildConfig({ users, http: { apiToken: 'x'.repeat(24) } }));
  assert.doesNotThrow(() => buildConfig({ users, http: { address: '127.0.0.1' } }));
});

test('PUBLIC_IP set (docker compose published): demo users and a missing token are refused, by name', () => {
  const env = { PUBLIC_IP: '203.0.113.7' };
  const both = refusal({}, env);
  assert.match(both, /users: PUBLIC_IP=203\.0\.113\.7 .*demo users/);
  assert.match(both, /http\.apiToken: PUBLIC_IP=203\.0\.113\.7/);
  assert.match(refusal({ users }, env), /http\.apiToken/);
  assert.match(refusal({}, { ...env, GW_HTTP_APITOKEN: 'x'.repeat(24) }), /^refusing to start:\n {2}users: /);
  assert.doesNotThrow(() => buildConfig({ users }, { ...env, GW_HTTP_APITOKEN: 'x'.repeat(24) }));
  assert.doesNotThrow(() => buildConfig({}, { PUBLIC_IP: '' }), 'empty: not published');
});

test('sip.trustedPeers must be CIDR ranges', () => {
  assert.match(refusal({ sip: { trustedPeers: ['203.0.113.0/33'] } }), /sip\.trustedPeers: bad prefix length/);
  assert.match(refusal({ sip: { trustedPeers: ['pbx.example.com'] } }), /sip\.trustedPeers: not an IP address/);
  assert.deepEqual(buildConfig({ sip: { trustedPeers: ['203.0.113.0/28', '2001:db8::1'] } }).sip.trustedPeers, ['203.0.113.0/28', '2001:db8::1']);
});

test('start-up says in one line what the defaults fence to private sources, and nothing when nothing is', () => {
  assert.match(guardNotice(buildConfig({}))!.message, /^the demo users 1000-1004 and the API \(no http\.apiToken\) answer only this machine and private networks/);
  assert.match(guardNotice(buildConfig({ users, http: { address: '127.0.0.1' } }))!.message, /^the API \(no http\.apiToken\) answers only/);
  assert.equal(guardNotice(buildConfig({ users, http: { apiToken: 'x'.repeat(24) } })), null);
});
