/**
 * Where registrations live and how they end: a binding expires on time; two gateway nodes
 * sharing one Redis see each other's registrations (a phone registered on one is called
 * through the other); SIP over WSS when a certificate is configured.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import type { Gateway } from '../../server/gateway.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { RtpPhone } from '../helpers/rtp-phone.js';

async function freeTcpPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('a registration expires when its time is up (event with the reason)', async () => {
  const gw = await startTestGateway({ registrar: { minExpires: 1, defaultExpires: 2 } });
  const phone = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway: `127.0.0.1:${gw.ports.udp}` });
  try {
    const removed = new Promise<string>((resolve) => gw.registrar.once('unregistered', (_b, why) => resolve(why)));
    await phone.register(1);
    assert.equal((await gw.registrar.store.get('alice')).length, 1);
    assert.equal(await removed, 'expired');
    assert.deepEqual(await gw.registrar.store.get('alice'), []);
  } finally {
    await phone.close();
    await gw.close();
  }
});

describe('two gateway nodes sharing a Redis location store', () => {
  let redis: ChildProcess;
  let redisPort: number;
  let a: Gateway;
  let b: Gateway;
  let alice: RtpPhone;
  let bob: RtpPhone;

  before(async () => {
    redisPort = await freeTcpPort();
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor('redis', () => new Promise<boolean>((resolve) => {
      const s = net.connect(redisPort, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    }));
    const store = { type: 'redis' as const, url: `redis://127.0.0.1:${redisPort}`, prefix: `t${process.pid}:` };
    a = await startTestGateway({ registrar: { store }, media: { minPort: 41000, maxPort: 41199 } });
    b = await startTestGateway({ registrar: { store }, media: { minPort: 41200, maxPort: 41399 } });
    // bob registers with node A; alice is a phone of node B
    bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway: `127.0.0.1:${a.ports.udp}`, tone: 880, autoAnswer: { ringMs: 0 } });
    alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway: `127.0.0.1:${b.ports.udp}`, tone: 440 });
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await a?.close();
    await b?.close();
    redis?.kill();
  });

  test('a phone registered on node A is reached through node B, with audio', async () => {
    await bob.register();
    assert.equal((await b.registrar.store.get('bob')).length, 1, 'node B sees the binding made on node A');
    const call = alice.call('bob');
    await call.answered;
    const incoming = await bob.nextIncoming();
    await waitFor('audio both ways', () => incoming.heardTone(440) && call.heardTone(880));
    await call.hangup();
    await bob.unregister();
    assert.deepEqual(await b.registrar.store.get('bob'), []);
  });
});

test('SIP over WSS when a certificate is configured', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  const gw = await startTestGateway({ http: { tls: { port: 0, cert, key } } });
  try {
    assert.ok(gw.ports.https);
    const ws = new WebSocket(`wss://127.0.0.1:${gw.ports.https}/sip`, 'sip', { rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const answer = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    ws.send('REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKwss1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=w1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: wss-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@abc.invalid;transport=wss>\r\nContent-Length: 0\r\n\r\n');
    assert.match(await answer, /^SIP\/2\.0 401 /);
    ws.close();
  } finally {
    await gw.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
