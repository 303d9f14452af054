/** server/config/load.ts: defaults, typo and type errors that name the key, environment overrides. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { buildConfig, ConfigError, loadConfig } from '../../server/config/load.js';

/** The message of the ConfigError `fn` throws. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
    return e.message;
  }
  assert.fail('no error');
}

describe('buildConfig', () => {
  it('the embedded defaults fill everything', () => {
    const cfg = buildConfig({});
    assert.deepEqual(cfg.sip.udp, { address: '0.0.0.0', port: 5060 });
    assert.equal(cfg.sip.timers.t1, 500);
    assert.equal(cfg.sip.timers.t2, 4000);
    assert.equal(cfg.sip.timers.t4, 5000);
    assert.equal(cfg.sip.timers.transactionTimeout, 32000);
    assert.equal(cfg.sip.forceRport, true);
    assert.equal(cfg.sip.maxForwards, 70);
    assert.deepEqual(cfg.sip.domains, []);
    assert.equal(cfg.sip.realm, null);
    assert.equal(cfg.http.port, 8080);
    assert.equal(cfg.http.wsPath, '/sip');
    assert.equal(cfg.http.tls.cert, null);
    assert.equal(cfg.http.tls.key, null);
    assert.equal(cfg.registrar.minExpires, 60);
    assert.equal(cfg.registrar.defaultExpires, 3600);
    assert.equal(cfg.registrar.maxExpires, 7200);
    assert.deepEqual(cfg.registrar.algorithms, ['MD5']);
    assert.equal(cfg.registrar.store.type, 'file');
    assert.equal(cfg.users.length, 5);
    assert.deepEqual(cfg.users[0], { username: '1000', password: 'secret1000' });
    assert.equal(cfg.log.level, 'info');
  });

  it('what the file sets wins, the rest is defaulted', () => {
    const cfg = buildConfig({ sip: { udp: { port: 5080 }, domains: ['example.com'] }, users: [{ username: 'alice', password: 'pw' }], http: { address: '127.0.0.1' } });
    assert.deepEqual(cfg.sip.udp, { address: '0.0.0.0', port: 5080 });
    assert.deepEqual(cfg.sip.domains, ['example.com']);
    assert.deepEqual(cfg.users, [{ username: 'alice', password: 'pw' }]);
    assert.equal(cfg.http.port, 8080);
  });

  it('does not change the object it was given', () => {
    const raw = { sip: { udp: { port: 5080 } } };
    buildConfig(raw, { GW_HTTP_PORT: '9000' });
    assert.deepEqual(raw, { sip: { udp: { port: 5080 } } });
  });

  it('udp: false turns SIP over UDP off', () => {
    assert.equal(buildConfig({ sip: { udp: false } }).sip.udp, false);
  });

  it('a typo names the key and the keys expected there', () => {
    const m = configError(() => buildConfig({ sip: { udpp: {} } }));
    assert.match(m, /sip\.udpp/);
    assert.match(m, /unknown key/);
    for (const key of ['domains', 'udp', 'timers']) assert.ok(m.includes(key), key);
  });

  it('a typo inside a union-typed section (udp: {...} | false) is named too', () => {
    const m = configError(() => buildConfig({ sip: { udp: { portt: 5060 } } }));
    assert.match(m, /sip\.udp\.portt: unknown key/);
    assert.match(m, /address, port/);
  });

  it('a typo in the store section names the store keys', () => {
    const m = configError(() => buildConfig({ registrar: { store: { type: 'redis', urll: 'redis://x' } } }));
    assert.match(m, /registrar\.store\.urll: unknown key/);
    assert.match(m, /\burl\b/);
  });

  it('an unknown top-level section is named', () => {
    assert.match(configError(() => buildConfig({ medai: {} })), /medai: unknown key/);
  });

  it('a wrong type names the key and what was given', () => {
    const m = configError(() => buildConfig({ http: { port: 'eighty' } }));
    assert.match(m, /http\.port/);
    assert.match(m, /integer/);
    assert.match(m, /"eighty"/);
    assert.match(configError(() => buildConfig({ sip: { forceRport: 'yes' } })), /sip\.forceRport/);
    assert.match(configError(() => buildConfig({ sip: { udp: { port: 70000 } } })), /sip\.udp\.port/);
  });

  it('an enum value out of range lists the choices', () => {
    const m = configError(() => buildConfig({ registrar: { store: { type: 'nosql' } } }));
    assert.match(m, /registrar\.store\.type/);
    assert.match(m, /"file", "memory", "redis"/);
    assert.match(configError(() => buildConfig({ log: { level: 'loud' } })), /log\.level: expected one of/);
  });

  it('a user without a password is named by position', () => {
    assert.match(configError(() => buildConfig({ users: [{ username: 'a' }] })), /users\.0\.password/);
  });

  it('refuses what is not an object of sections', () => {
    for (const raw of [null, [], 'sip', 42]) configError(() => buildConfig(raw));
  });

  it('minExpires > maxExpires fails', () => {
    const m = configError(() => buildConfig({ registrar: { minExpires: 100, defaultExpires: 100, maxExpires: 50 } }));
    assert.match(m, /minExpires/);
    assert.match(m, /maxExpires/);
  });

  it('a default expiry outside [min, max] fails', () => {
    configError(() => buildConfig({ registrar: { minExpires: 4000 } }));
  });

  it('a TLS certificate without its key fails', () => {
    assert.match(configError(() => buildConfig({ http: { tls: { cert: '/x.pem' } } })), /cert and key/);
  });

  it('the same username twice fails', () => {
    const m = configError(() => buildConfig({ users: [{ username: 'a', password: '1' }, { username: 'a', password: '2' }] }));
    assert.match(m, /username a appears twice/);
  });
});

describe('environment overrides', () => {
  it('GW_SIP_UDP_PORT and GW_REGISTRAR_STORE_TYPE apply, numbers as numbers', () => {
    const cfg = buildConfig({}, { GW_SIP_UDP_PORT: '5070', GW_REGISTRAR_STORE_TYPE: 'memory' });
    assert.equal(cfg.sip.udp && cfg.sip.udp.port, 5070);
    assert.equal(cfg.registrar.store.type, 'memory');
  });

  it('override the file, and keep the file\'s other keys', () => {
    const cfg = buildConfig({ sip: { udp: { address: '127.0.0.1', port: 5080 } } }, { GW_SIP_UDP_PORT: '5070' });
    assert.deepEqual(cfg.sip.udp, { address: '127.0.0.1', port: 5070 });
  });

  it('camelCase keys match case-insensitively; JSON values are read as JSON', () => {
    const cfg = buildConfig({}, {
      GW_REGISTRAR_MINEXPIRES: '30',
      GW_SIP_TIMERS_T1: '250',
      GW_SIP_DOMAINS: '["a.example.com","b.example.com"]',
      GW_SIP_FORCERPORT: 'false',
      GW_SIP_ADVERTISE: '203.0.113.7',
    });
    assert.equal(cfg.registrar.minExpires, 30);
    assert.equal(cfg.sip.timers.t1, 250);
    assert.deepEqual(cfg.sip.domains, ['a.example.com', 'b.example.com']);
    assert.equal(cfg.sip.forceRport, false);
    assert.equal(cfg.sip.advertise, '203.0.113.7');
  });

  it('GW_SIP_UDP=false turns UDP off', () => {
    assert.equal(buildConfig({}, { GW_SIP_UDP: 'false' }).sip.udp, false);
  });

  it('a variable naming no key fails with its name', () => {
    const m = configError(() => buildConfig({}, { GW_SIP_UDPP_PORT: '5070' }));
    assert.match(m, /GW_SIP_UDPP_PORT/);
  });

  it('a variable with a value of the wrong type names the key', () => {
    assert.match(configError(() => buildConfig({}, { GW_HTTP_PORT: 'abc' })), /http\.port/);
  });

  it('variables without the GW_ prefix are ignored', () => {
    assert.deepEqual(buildConfig({}, { PATH: '/bin', SIP_UDP_PORT: '1' }), buildConfig({}));
  });
});

describe('loadConfig', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-config-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads YAML and JSON files, then applies the environment', () => {
    const yaml = path.join(dir, 'gw.yaml');
    fs.writeFileSync(yaml, 'sip:\n  udp:\n    port: 5090\nlog:\n  level: debug\n');
    const cfg = loadConfig(yaml, { GW_HTTP_PORT: '8081' });
    assert.equal(cfg.sip.udp && cfg.sip.udp.port, 5090);
    assert.equal(cfg.log.level, 'debug');
    assert.equal(cfg.http.port, 8081);
    const json = path.join(dir, 'gw.json');
    fs.writeFileSync(json, JSON.stringify({ http: { port: 8082 } }));
    assert.equal(loadConfig(json, {}).http.port, 8082);
  });

  it('GATEWAY_CONFIG names the file when no path is given; none at all means the defaults', () => {
    const yaml = path.join(dir, 'env.yaml');
    fs.writeFileSync(yaml, 'http:\n  port: 8083\n');
    assert.equal(loadConfig(null, { GATEWAY_CONFIG: yaml }).http.port, 8083);
    assert.equal(loadConfig(null, {}).http.port, 8080);
  });

  it('a missing file and a broken file are ConfigErrors naming the file', () => {
    assert.match(configError(() => loadConfig(path.join(dir, 'nope.yaml'), {})), /nope\.yaml/);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{ "http": ');
    assert.match(configError(() => loadConfig(bad, {})), /bad\.json.*JSON/);
  });
});
