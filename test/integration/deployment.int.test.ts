/**
 * What an operator starts from: the compose file and the Dockerfile (checked statically:
 * no Docker engine runs here), the config files we ship (valid, and the JSON Schema current).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
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
  assert.ok(gw.ports?.some((p) => p.startsWith('5060:5060/udp')), 'SIP on UDP 5060');
  assert.ok(gw.ports?.some((p) => p.startsWith('8080:8080')), 'HTTP (softphone, WS)');
  assert.ok(gw.ports?.some((p) => /RTP_MIN_PORT.*\/udp$/.test(p)), 'an RTP port range');
  assert.ok(gw.environment?.GW_MEDIA_ANNOUNCEDADDRESS, 'the announced address comes from the environment');
  assert.deepEqual(compose.services['tap-server']?.command, ['node', 'examples/tap-server/server.mjs']);
  assert.ok(fs.existsSync(file('examples/tap-server/server.mjs')));
});

test('the Dockerfile builds on an official Node image and runs the compiled gateway', () => {
  const df = fs.readFileSync(file('Dockerfile'), 'utf8');
  assert.match(df, /^FROM node:20[\w.-]* AS build$/m);
  assert.match(df, /^FROM node:20[\w.-]*$/m);
  assert.match(df, /RUN npm ci/);
  assert.match(df, /ensure-mediasoup-worker/);
  assert.match(df, /^CMD \["node", "dist\/server\/main\.js"\]$/m);
  assert.match(df, /^EXPOSE 5060\/udp/m);
  assert.ok(fs.readFileSync(file('.dockerignore'), 'utf8').includes('node_modules'));
});

test('the shipped configs are valid and config/schema.json is current', () => {
  for (const name of ['config/gateway.example.yaml', 'config/docker.yaml']) {
    assert.doesNotThrow(() => buildConfig(readConfigFile(file(name))), name);
  }
  const before = fs.readFileSync(file('config/schema.json'), 'utf8');
  execFileSync(process.execPath, [file('scripts/write-config-schema.mjs')], { stdio: 'pipe' });
  assert.equal(fs.readFileSync(file('config/schema.json'), 'utf8'), before, 'run npm run config:schema and commit config/schema.json');
});
