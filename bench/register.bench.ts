/**
 * REGISTER load over UDP with SIPp, with and without digest auth, at any SIP server.
 *
 *   node dist/bench/register.bench.js --target 127.0.0.1:5060 --pid 1234 [--auth]
 *   node dist/bench/register.bench.js --compare [--users 20000] [--rate 5000]
 *
 * --compare starts our gateway and then the anchors' Kamailio (../shared/anchors) and runs
 * the same load at each, with and without auth, and prints REGISTER/s, failures, the server's
 * CPU seconds, registrations per CPU-second, and the ratios gateway/Kamailio.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../server/paths.js';
import { cpuSeconds, startGatewayProcess, startKamailio, type Server } from './lib/servers.js';
import { answerHelp } from './lib/help.js';

answerHelp(import.meta.url);

const { values: opt } = parseArgs({
  options: {
    target: { type: 'string' },
    pid: { type: 'string' },
    auth: { type: 'boolean', default: false },
    compare: { type: 'boolean', default: false },
    users: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '5000' },
    limit: { type: 'string', default: '2000' },
    'max-seconds': { type: 'string', default: '120' },
    'kam-children': { type: 'string', default: '4' },
  },
});

interface Result {
  server: string;
  auth: boolean;
  users: number;
  rate: number;
  successful: number;
  failed: number;
  retransmissions: number;
  wallSeconds: number;
  registersPerSecond: number;
  cpuSeconds: number;
  cpuPercent: number;
  registersPerCpuSecond: number;
}

async function runLoad(server: { name: string; pid: number; sipTarget: string }, auth: boolean, users: number, rate: number): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-bench-'));
  // distinct users per run, so no run refreshes the previous run's bindings
  const lines = ['SEQUENTIAL'];
  for (let i = 1; i <= users; i++) {
    const u = `user${String(i).padStart(6, '0')}`;
    lines.push(`${u};3600;[authentication username=${u} password=anchors]`);
  }
  fs.writeFileSync(path.join(dir, 'users.csv'), lines.join('\n') + '\n');
  const maxSeconds = Number(opt['max-seconds']);
  const args = ['-sf', path.join(projectRoot, 'bench', 'sipp', 'reg-load.xml'), server.sipTarget, '-i', '127.0.0.1', '-p', String(31000 + Math.floor(Math.random() * 2000)),
    '-inf', path.join(dir, 'users.csv'), '-m', String(users), '-r', String(rate), '-l', opt.limit!, '-nostdin',
    '-timeout', `${maxSeconds}s`, '-timeout_error', '-max_recv_loops', '1000', '-trace_stat', '-stf', path.join(dir, 'stat.csv'), '-fd', '1'];
  const cpu0 = cpuSeconds(server.pid);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const child = spawn('sipp', args, { stdio: 'ignore', cwd: dir });
    const kill = setTimeout(() => child.kill('SIGKILL'), (maxSeconds + 15) * 1000);
    child.on('close', () => {
      clearTimeout(kill);
      resolve();
    });
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(server.pid) - cpu0;
  const rows = fs.readFileSync(path.join(dir, 'stat.csv'), 'utf8').trim().split('\n').map((l) => l.split(';'));
  const head = rows[0]!;
  const last = rows[rows.length - 1]!;
  const col = (name: string): number => Number(last[head.indexOf(name)]);
  fs.rmSync(dir, { recursive: true, force: true });
  const successful = col('SuccessfulCall(C)');
  return {
    server: server.name,
    auth,
    users,
    rate,
    successful,
    failed: col('FailedCall(C)'),
    retransmissions: col('Retransmissions(C)'),
    wallSeconds: round(wall),
    registersPerSecond: round(successful / wall),
    cpuSeconds: round(cpu),
    cpuPercent: round((100 * cpu) / wall),
    registersPerCpuSecond: cpu > 0 ? Math.round(successful / cpu) : 0,
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function gatewayConfig(users: number, auth: boolean): { sip: object; http: object } & Record<string, unknown> {
  const list = [];
  for (let i = 1; i <= users; i++) list.push({ username: `user${String(i).padStart(6, '0')}`, password: 'anchors' });
  return {
    // SIPp's load comes from loopback: trusted, so the flood guard measures as a pass, not a ban
    sip: { advertise: '127.0.0.1', udp: { address: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.0/8'] },
    http: { address: '127.0.0.1', port: 0 },
    registrar: { store: { type: 'memory' }, authenticate: auth },
    users: list,
    log: { level: 'warn', pretty: false },
  };
}

function print(results: Result[]): void {
  console.log('\nserver                       auth  ok/failed       REG/s   CPU s  CPU %  REG per CPU-s');
  for (const r of results) {
    console.log(`${r.server.padEnd(28)} ${r.auth ? 'yes ' : 'no  '}  ${`${r.successful}/${r.failed}`.padEnd(14)} ${String(r.registersPerSecond).padStart(7)} ${String(r.cpuSeconds).padStart(7)} ${String(r.cpuPercent).padStart(6)} ${String(r.registersPerCpuSecond).padStart(14)}`);
  }
}

async function main(): Promise<void> {
  const users = Number(opt.users);
  const rate = Number(opt.rate);
  if (!opt.compare) {
    if (!opt.target || !opt.pid) throw new Error('give --target HOST:PORT and --pid PID (or --compare)');
    if (!/^(127\.|localhost)/.test(opt.target)) throw new Error('the target must be on loopback');
    const r = await runLoad({ name: opt.target, pid: Number(opt.pid), sipTarget: opt.target }, opt.auth!, users, rate);
    print([r]);
    console.log(JSON.stringify(r));
    return;
  }
  const results: Result[] = [];
  for (const auth of [false, true]) {
    const gw = await startGatewayProcess(gatewayConfig(users, auth), 'gateway (node, 1 thread)');
    try {
      results.push(await runLoad(gw, auth, users, rate));
    } finally {
      await gw.stop();
    }
    let kam: Server | null = null;
    try {
      kam = await startKamailio({ KAM_AUTH: auth ? '1' : '0', KAM_NORTPE: '1', KAM_CHILDREN: opt['kam-children']! });
      results.push(await runLoad(kam, auth, users, rate));
    } catch (e) {
      console.error(`kamailio: ${(e as Error).message}`);
    } finally {
      await kam?.stop();
    }
  }
  print(results);
  for (const auth of [false, true]) {
    const g = results.find((r) => r.auth === auth && r.server.startsWith('gateway'));
    const k = results.find((r) => r.auth === auth && r.server.startsWith('kamailio'));
    if (g && k) {
      console.log(`auth=${auth}: REGISTER/s gateway/kamailio = ${round(g.registersPerSecond / k.registersPerSecond)}, per CPU-second gateway/kamailio = ${round(g.registersPerCpuSecond / k.registersPerCpuSecond)}`);
    }
  }
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${execFileSync('nproc').toString().trim()} cores`);
  console.log(JSON.stringify(results));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
