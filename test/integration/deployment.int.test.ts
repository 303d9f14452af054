/**
 * What an operator starts from: the compose file and the Dockerfile (checked statically:
 * no Docker engine runs here), the config files we ship (valid, and the JSON Schema current).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { buildConfig, readConfigFile } from '../../server/config/load.js';
import { projectRoot } from '../../server/paths.js';

const file = (p: string): string => path.join(projectRoot, p);

test('docker-compose.yml is valid for docker-compose, with the gateway and a tap server', () => {
  execFileSync('docker-compose', ['-f', file('docker-compose.yml'), 'config', '-q'], { stdio: 'pipe', env: { ...process.env, PUBLIC_IP: '192.0.2.10' } });
  const compose = YAML.parse(fs.readFileSync(file('docker-compose.yml'), 'utf8')) as { services: Record<string, { ports?: string[]; environment?: Record<string, string>; command?: string[] }> };
  const gw = compose.services.gateway!;
  // published on 127.0.0.1 unless PUBLIC_IP names an address of the host
  const bound = '${PUBLIC_IP:-127.0.0.1}:';
  assert.ok(gw.ports?.some((p) => p.startsWith(`${bound}5060:5060/udp`)), 'SIP on UDP 5060');
  assert.ok(gw.ports?.some((p) => p.startsWith(`${bound}8080:8080`)), 'HTTP (softphone, WS)');
  assert.ok(gw.ports?.some((p) => /RTP_MIN_PORT.*\/udp$/.test(p)), 'an RTP port range');
  assert.ok(gw.ports?.every((p) => p.startsWith(bound)), 'every port bound to PUBLIC_IP or loopback');
  assert.ok(gw.environment?.GW_MEDIA_ANNOUNCEDADDRESS, 'the announced address comes from the environment');
  assert.equal(gw.environment?.PUBLIC_IP, '${PUBLIC_IP:-}', 'the gateway is told it is published');
  assert.deepEqual(compose.services['tap-server']?.command, ['node', 'examples/tap-server/server.mjs']);
  assert.equal(compose.services['tap-server']?.ports, undefined, 'the tap server is not published outside the compose network');
  const local = execFileSync('docker-compose', ['-f', file('docker-compose.yml'), 'config'], { encoding: 'utf8', env: { ...process.env, PUBLIC_IP: '' } });
  assert.match(local, /- 127\.0\.0\.1:8080:8080/);
  assert.ok(fs.existsSync(file('examples/tap-server/server.mjs')));
});

test('the Dockerfile builds on a supported Node LTS and runs the compiled gateway unprivileged, health-checked', () => {
  const df = fs.readFileSync(file('Dockerfile'), 'utf8');
  assert.match(df, /^FROM node:(22|24)[\w.-]* AS build$/m);
  assert.match(df, /^FROM node:(22|24)[\w.-]*$/m);
  assert.match(df, /^USER node$/m);
  assert.match(df, /^HEALTHCHECK [\s\S]*\/healthz/m);
  assert.match(df, /RUN npm ci/);
  assert.match(df, /ensure-mediasoup-worker/);
  assert.match(df, /^CMD \["node", "dist\/server\/main\.js"\]$/m);
  assert.match(df, /^EXPOSE 5060\/udp/m);
  assert.ok(fs.readFileSync(file('.dockerignore'), 'utf8').includes('node_modules'));
});

test('the Dockerfile\'s final stage installs every library the patched worker links (install-system-deps.sh --runtime), and SRTP is OpenSSL\'s', (t) => {
  const worker = file('node_modules/mediasoup/worker/out/Release/mediasoup-worker');
  const stamp = fs.existsSync(`${worker}.stamp`) ? fs.readFileSync(`${worker}.stamp`, 'utf8') : '';
  if (!stamp.startsWith('patched')) return t.skip('the installed worker is not our build (prebuilt: it links no Debian library)');
  const df = fs.readFileSync(file('Dockerfile'), 'utf8');
  assert.match(df, /install-system-deps\.sh --runtime/);
  const script = fs.readFileSync(file('scripts/install-system-deps.sh'), 'utf8');
  const runtime = /^RUNTIME=\(([^)]*)\)/m.exec(script)![1]!.split(/\s+/).filter(Boolean);
  // what apt installs with them (their Depends, recursively), and what node's image already has
  const closure = new Set(['libc6', 'libgcc-s1', 'libstdc++6']);
  const deps = execFileSync('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...runtime], { encoding: 'utf8' });
  for (const line of deps.split('\n')) if (line && !line.startsWith(' ')) closure.add(line.trim());
  const libs = execFileSync('ldd', [worker], { encoding: 'utf8' }).split('\n').map((l) => /=> (\/\S+)/.exec(l)?.[1]).filter((x): x is string => !!x);
  assert.ok(libs.length > 3, 'ldd lists the worker\'s libraries');
  // SRTP through OpenSSL (scripts/mediasoup/libsrtp-openssl.mjs), not Debian's NSS-backed libsrtp2
  const nss = libs.filter((l) => /lib(nss3|srtp2)\.so/.test(l));
  assert.deepEqual(nss, [], 'the worker links libsrtp built with OpenSSL, not NSS');
  // one dpkg-query for all (it scans every package's file list): each library under its
  // ldd name, its real path, and the other side of the /lib -> /usr/lib merge
  const names = (lib: string): string[] => {
    const real = fs.realpathSync(lib);
    return [...new Set([lib, real, real.replace(/^\/usr\/lib\//, '/lib/'), lib.replace(/^\/lib\//, '/usr/lib/')])];
  };
  const found = new Map<string, string>();
  const out = spawnSync('dpkg-query', ['-S', ...libs.flatMap(names)], { encoding: 'utf8' }).stdout;
  for (const line of out.split('\n')) {
    const m = /^([^:]+)(?::\S+)?: (\/\S+)$/.exec(line);
    if (m) found.set(m[2]!, m[1]!);
  }
  const owner = (lib: string): string | null => names(lib).map((n) => found.get(n)).find((x) => x !== undefined) ?? null;
  const missing = libs.map((l) => ({ l, pkg: owner(l) })).filter(({ pkg }) => pkg === null || !closure.has(pkg));
  assert.deepEqual(missing, [], `libraries of the worker no --runtime package brings: ${missing.map((m) => `${m.l} (${m.pkg ?? 'no package'})`).join(', ')}`);
});

test('the shipped configs are valid and config/schema.json is current', () => {
  for (const name of ['config/gateway.example.yaml', 'config/docker.yaml']) {
    assert.doesNotThrow(() => buildConfig(readConfigFile(file(name))), name);
  }
  const before = fs.readFileSync(file('config/schema.json'), 'utf8');
  execFileSync(process.execPath, [file('scripts/write-config-schema.mjs')], { stdio: 'pipe' });
  assert.equal(fs.readFileSync(file('config/schema.json'), 'utf8'), before, 'run npm run config:schema and commit config/schema.json');
});

test('compose published on PUBLIC_IP with the shipped docker config refuses to start, naming users and http.apiToken', () => {
  const raw = readConfigFile(file('config/docker.yaml'));
  assert.throws(() => buildConfig(raw, { PUBLIC_IP: '203.0.113.7' }), /users: PUBLIC_IP=203\.0\.113\.7[\s\S]*http\.apiToken: PUBLIC_IP/);
  assert.doesNotThrow(() => buildConfig(raw, { PUBLIC_IP: '' }), 'the local demo starts');
  assert.doesNotThrow(() => buildConfig(raw, { PUBLIC_IP: '203.0.113.7', GW_HTTP_APITOKEN: 'a-long-random-token-0123', GW_USERS: '[{"username":"alice","password":"a-long-password"}]' }));
});
