/**
 * The embedded store keeps registrations across a restart: a desk phone registered before
 * the gateway restarts is called after it without registering again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { freeUdpPort, startTestGateway, waitUntilBound } from '../helpers/gateway.js';
import { registerWithSipp, sipp } from '../helpers/sipp.js';

test('a UDP user registered before a restart is reachable after it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-restart-'));
  const store = { type: 'file' as const, path: path.join(dir, 'location.jsonl') };
  const uasPort = await freeUdpPort();

  const first = await startTestGateway({ registrar: { store } });
  const reg = await registerWithSipp(`127.0.0.1:${first.ports.udp}`, 'uas', 'pw-uas', uasPort);
  assert.equal(reg.code, 0, reg.output);
  await first.close();

  const second = await startTestGateway({ registrar: { store } });
  try {
    assert.equal((await second.registrar.store.get('uas')).length, 1, 'the binding came back from the journal');
    const uas = sipp({ scenario: 'uas.xml', port: uasPort, calls: 1 });
    await waitUntilBound(uasPort);
    const uac = await sipp({ scenario: 'uac.xml', target: `127.0.0.1:${second.ports.udp}`, service: 'uas', calls: 1, holdMs: 100 }).done;
    const callee = await uas.done;
    assert.equal(uac.code, 0, `caller failed:\n${uac.output}`);
    assert.equal(callee.code, 0, `callee failed:\n${callee.output}`);
  } finally {
    await second.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
