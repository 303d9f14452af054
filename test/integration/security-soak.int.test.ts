/**
 * A SIPVicious run against a configured gateway (its own process, as operators run it): for
 * SECURITY_SOAK_SECONDS (default 60) one public source (a network namespace, 198.18.0.0/15)
 * alternates OPTIONS sweeps (svmap), REGISTER and INVITE password guessing (svcrack), each until it is
 * banned, then waits for the ban to end and starts again. Meanwhile a user on this machine
 * re-registers every 2 s and calls another every 3 s. The source must be banned within seconds
 * each time, the user never fail, and the gateway's memory come back near its baseline.
 * INVITE guessing (407 challenges of route[AUTH] answered with wrong passwords, toll fraud
 * style) is the third phase.
 * Prints its figures as test diagnostics.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { createNetns, netnsUnavailable } from '../helpers/netns.js';
import { RtpPhone } from '../helpers/rtp-phone.js';
import type { SoakResult } from '../helpers/sip-attacker.js';

const SECONDS = Number(process.env.SECURITY_SOAK_SECONDS ?? 60);
const BAN_SECONDS = 8;
const TOKEN = 'soak-token-0123456789abcdef';

interface Memory { rssMb: number; heapUsedMb: number }

/**
 * The gateway runs with --expose-gc and a one-line preload that collects garbage on SIGUSR2,
 * so the heap is compared live object for live object, not as the collector left it.
 */
const GC_ON_SIGNAL = `--import=data:text/javascript,process.on('SIGUSR2',()=>globalThis.gc())`;

/** RSS from /proc, heap from the gateway's own /metrics, after a full collection. */
async function memoryOf(pid: number, httpPort: number): Promise<Memory> {
  process.kill(pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 500));
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const heap = Number(/^gateway_node_nodejs_heap_size_used_bytes (\d+(\.\d+)?)/m.exec(metrics)?.[1]);
  return { rssMb: Math.round(rssKb / 1024), heapUsedMb: Math.round(heap / 1024 / 1024) };
}

function writeConfig(dir: string): string {
  const file = path.join(dir, 'gateway.json');
  fs.writeFileSync(file, JSON.stringify({
    sip: { advertise: '127.0.0.1', udp: { address: '0.0.0.0', port: 0 } },
    http: { address: '127.0.0.1', port: 0, apiToken: TOKEN },
    registrar: { store: { type: 'memory' } },
    media: { listenAddress: '127.0.0.1', workers: 1, minPort: 44000, maxPort: 44199 },
    users: [{ username: 'alice', password: 'pw-alice' }, { username: 'bob', password: 'pw-bob' }],
    // the other security settings are the defaults; a short ban lets the attack come back
    security: { banTime: BAN_SECONDS },
    shutdown: { grace: 0 },
    log: { level: 'info', pretty: false },
  }));
  return file;
}

test(`SIPVicious for ${SECONDS} s from a public source: banned within seconds, the local user unharmed, memory back to baseline`, { skip: netnsUnavailable() ?? false, timeout: (SECONDS + 120) * 1000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-soak-'));
  const ns = await createNetns();
  const gw = await startGatewayProcess(writeConfig(dir), ['--expose-gc', GC_ON_SIGNAL]);
  const target = `127.0.0.1:${gw.udp}`;
  const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway: target, tone: 440 });
  const bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway: target, tone: 880, autoAnswer: { ringMs: 0 } });
  const legit = { registered: 0, registerFailed: 0, calls: 0, callsFailed: 0, errors: [] as string[] };
  let running = true;
  try {
    assert.equal((await alice.register()).status, 200);
    assert.equal((await bob.register()).status, 200);
    const warm = alice.call('bob');
    await warm.answered;
    await warm.hangup();
    await new Promise((r) => setTimeout(r, 1000));
    const baseline = await memoryOf(gw.child.pid!, gw.http);

    const registering = (async () => {
      while (running) {
        try {
          const r = await alice.register();
          if (r.status === 200) legit.registered++;
          else { legit.registerFailed++; legit.errors.push(`REGISTER ${r.status}`); }
        } catch (e) {
          legit.registerFailed++;
          legit.errors.push(`REGISTER ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    const calling = (async () => {
      while (running) {
        try {
          const call = alice.call('bob');
          await call.answered;
          await new Promise((r) => setTimeout(r, 500));
          await call.hangup();
          legit.calls++;
        } catch (e) {
          legit.callsFailed++;
          legit.errors.push(`call: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 3000));
      }
    })();

    const r = await ns.node(['dist/test/helpers/sip-attacker.js', 'soak', ns.hostAddress, String(gw.udp), 'alice', String(SECONDS)], (SECONDS + 60) * 1000);
    running = false;
    await Promise.all([registering, calling]);
    assert.equal(r.code, 0, r.stderr);
    const attack = JSON.parse(r.stdout.trim().split('\n').pop()!) as SoakResult;

    // the bans end, the counters are swept: then memory
    await new Promise((res) => setTimeout(res, (BAN_SECONDS + 3) * 1000));
    const afterwards = await memoryOf(gw.child.pid!, gw.http);

    const lines = gw.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; source?: string; reason?: string });
    const bans = lines.filter((l) => l.msg === 'source banned');
    const failures = lines.filter((l) => l.msg === 'auth failed');
    t.diagnostic(`attacker: ${attack.sent} messages sent, ${attack.replies} answered; phases ${attack.bans.map((b) => `${b.phase} silent after ${b.silentAfterMs} ms`).join(', ')}`);
    t.diagnostic(`gateway: ${bans.length} bans (${bans.map((b) => b.reason).join(', ')}), ${failures.length} "auth failed" lines, ${lines.filter((l) => l.msg === 'ban ended').length} ends`);
    t.diagnostic(`local user: ${legit.registered} registrations, ${legit.calls} calls, ${legit.registerFailed + legit.callsFailed} failures ${legit.errors.slice(0, 3).join('; ')}`);
    t.diagnostic(`memory: rss ${baseline.rssMb} -> ${afterwards.rssMb} MB, heap used ${baseline.heapUsedMb} -> ${afterwards.heapUsedMb} MB`);

    assert.ok(bans.length >= 1 && bans.every((b) => b.source === ns.address), 'the attacker, and only it, was banned');
    for (const phase of attack.bans.filter((b) => b.silentAfterMs !== null)) {
      assert.ok(phase.silentAfterMs! < 10_000, `${phase.phase}: banned within seconds (${phase.silentAfterMs} ms)`);
    }
    if (SECONDS >= 30) assert.deepEqual([...new Set(bans.map((b) => b.reason))].sort(), ['auth-failures', 'flood'], 'both kinds of ban seen');
    assert.ok(failures.length > 0 && failures.every((f) => f.source === ns.address), 'every guess logged as "auth failed" with its source');
    assert.equal(legit.registerFailed, 0, legit.errors.join('; '));
    assert.equal(legit.callsFailed, 0, legit.errors.join('; '));
    assert.ok(legit.registered >= 1 && legit.calls >= 1);
    assert.ok(afterwards.heapUsedMb <= baseline.heapUsedMb + 8, `heap back near baseline: ${baseline.heapUsedMb} -> ${afterwards.heapUsedMb} MB`);
    assert.ok(afterwards.rssMb <= baseline.rssMb + 64, `RSS near baseline: ${baseline.rssMb} -> ${afterwards.rssMb} MB`);
  } finally {
    running = false;
    await alice.close();
    await bob.close();
    gw.child.kill('SIGKILL');
    await ns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
