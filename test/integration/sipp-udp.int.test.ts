/**
 * Real SIP peers over UDP: SIPp registers with digest auth, calls a SIPp UAS registered as
 * another user, and cancels a ringing call, all through the gateway.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Gateway } from '../../server/gateway.js';
import { freeUdpPort, startTestGateway, waitUntilBound } from '../helpers/gateway.js';
import { request, UdpSipClient } from '../helpers/sip-client.js';
import { registerWithSipp, sipp } from '../helpers/sipp.js';

describe('SIP over UDP with SIPp', () => {
  let gw: Gateway;
  let target: string;

  before(async () => {
    gw = await startTestGateway();
    target = `127.0.0.1:${gw.ports.udp}`;
  });
  after(() => gw.close());

  test('registers with digest auth and the binding is listed', async () => {
    const port = await freeUdpPort();
    const r = await registerWithSipp(target, 'alice', 'pw-alice', port);
    assert.equal(r.code, 0, r.output);
    const bindings = await gw.registrar.store.get('alice');
    assert.equal(bindings.length, 1);
    assert.equal(bindings[0]!.contact, `sip:alice@127.0.0.1:${port}`);
  });

  test('a wrong password gets 403 and leaves no binding', async () => {
    const r = await sipp({ scenario: 'register-wrong-password.xml', target, service: 'carol', auth: { user: 'carol', password: 'nope' }, vars: { contact_port: 5999, expires: 3600 } }).done;
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(await gw.registrar.store.get('carol'), []);
  });

  test('an unknown user is challenged like anyone, then gets 403', async () => {
    const r = await sipp({ scenario: 'register-wrong-password.xml', target, service: 'mallory', auth: { user: 'mallory', password: 'x' }, vars: { contact_port: 5999, expires: 3600 } }).done;
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(await gw.registrar.store.get('mallory'), []);
  });

  test('a UAC calls a registered UAS: 180, 200 with Record-Route, ACK, BYE', async () => {
    const uasPort = await freeUdpPort();
    const uas = sipp({ scenario: 'uas.xml', port: uasPort, calls: 1, timeoutS: 20 });
    await waitUntilBound(uasPort);
    const reg = await registerWithSipp(target, 'uas', 'pw-uas', uasPort);
    assert.equal(reg.code, 0, reg.output);
    const uac = await sipp({ scenario: 'uac.xml', target, service: 'uas', calls: 1, holdMs: 200 }).done;
    const callee = await uas.done;
    assert.equal(uac.code, 0, `caller failed:\n${uac.output}`);
    assert.equal(callee.code, 0, `callee failed:\n${callee.output}`);
    assert.equal(gw.calls.size, 0, 'the call is over for the gateway too');
  });

  test('a CANCEL before answer ends both sides', async () => {
    const uasPort = await freeUdpPort();
    const uas = sipp({ scenario: 'uas-cancel.xml', port: uasPort, calls: 1, timeoutS: 20 });
    await waitUntilBound(uasPort);
    const reg = await registerWithSipp(target, 'bob', 'pw-bob', uasPort);
    assert.equal(reg.code, 0, reg.output);
    const uac = await sipp({ scenario: 'uac-cancel.xml', target, service: 'bob', calls: 1 }).done;
    const callee = await uas.done;
    assert.equal(uac.code, 0, `caller failed:\n${uac.output}`);
    assert.equal(callee.code, 0, `callee failed:\n${callee.output}`);
  });

  test('calls to unknown users get 404, to users not registered 480', async () => {
    const client = await UdpSipClient.open();
    try {
      const a = request('INVITE', `sip:nobody@127.0.0.1:${gw.ports.udp}`, client);
      client.send(a.text, gw.ports.udp!);
      assert.equal((await client.finalResponse(a.callId)).status, 404);
      const b = request('INVITE', `sip:uac@127.0.0.1:${gw.ports.udp}`, client);
      client.send(b.text, gw.ports.udp!);
      assert.equal((await client.finalResponse(b.callId)).status, 480);
    } finally {
      client.close();
    }
  });

  test('OPTIONS to the gateway itself gets 200', async () => {
    const client = await UdpSipClient.open();
    try {
      const o = request('OPTIONS', `sip:127.0.0.1:${gw.ports.udp}`, client);
      client.send(o.text, gw.ports.udp!);
      const res = await client.finalResponse(o.callId, 'OPTIONS');
      assert.equal(res.status, 200);
      assert.match(res.get('allow') ?? '', /INVITE/);
    } finally {
      client.close();
    }
  });
});
