/**
 * What the benchmarks measure against: our gateway started as its own process, and the
 * anchors' Kamailio (../shared/anchors), on loopback; CPU read from /proc.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../server/paths.js';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds used so far by a process and its direct children (Kamailio forks workers). */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  const pids = [pid];
  try {
    pids.push(...execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)]).toString().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    // no children
  }
  for (const p of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks / CLK_TCK;
}

export interface Server {
  name: string;
  pid: number;
  sipTarget: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago. */
/** A port free on 127.0.0.1 a moment ago (bound, read and closed). */
export async function freePort(type: 'udp4' | 'tcp'): Promise<number> {
  if (type === 'udp4') {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    s.close();
    return port;
  }
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * Starts `node dist/server/main.js` with a generated config (its sip.udp and http ports are
 * chosen here); resolves once /readyz says so.
 */
export async function startGatewayProcess(config: { sip: object; http: object } & Record<string, unknown>, name = 'gateway'): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-bench-'));
  const file = path.join(dir, 'config.json');
  const udp = await freePort('udp4');
  const http = await freePort('tcp');
  fs.writeFileSync(file, JSON.stringify({
    ...config,
    sip: { ...config.sip, udp: { address: '127.0.0.1', port: udp } },
    http: { ...config.http, address: '127.0.0.1', port: http },
  }));
  const child: ChildProcess = spawn(process.execPath, [path.join(projectRoot, 'dist', 'server', 'main.js'), '--config', file], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let exited = false;
  child.once('exit', () => { exited = true; });
  const end = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error('the gateway exited at start-up');
    if (Date.now() > end) throw new Error('the gateway did not get ready in 60 s');
    try {
      if ((await fetch(`http://127.0.0.1:${http}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name,
    pid: child.pid!,
    sipTarget: `127.0.0.1:${udp}`,
    stop: () => new Promise((resolve) => {
      if (exited) return resolve();
      child.once('exit', () => {
        fs.rmSync(dir, { recursive: true, force: true });
        resolve();
      });
      child.kill('SIGTERM');
    }),
  };
}

export const anchorsDir = process.env.ANCHORS_DIR ?? path.resolve(projectRoot, '..', 'shared', 'anchors');

/** The anchors' Kamailio on 127.0.0.1:5060 (its start script, its pidfile). */
export async function startKamailio(env: Record<string, string>): Promise<Server> {
  const script = path.join(anchorsDir, 'kamailio', 'start-kamailio.sh');
  if (!fs.existsSync(script)) throw new Error(`no anchors Kamailio at ${script}`);
  execFileSync('bash', [script, 'stop'], { stdio: 'ignore', env: { ...process.env, ...env } });
  execFileSync('bash', [script], { stdio: 'inherit', env: { ...process.env, ...env } });
  const pid = Number(fs.readFileSync('/tmp/anchors/kamailio/kamailio.pid', 'utf8').trim());
  return {
    name: `kamailio${env.KAM_CHILDREN ? ` (${env.KAM_CHILDREN} workers)` : ''}`,
    pid,
    sipTarget: '127.0.0.1:5060',
    stop: async () => {
      execFileSync('bash', [script, 'stop'], { stdio: 'ignore' });
    },
  };
}

export function sippAvailable(): boolean {
  try {
    execFileSync('sipp', ['-v'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    return (e as { status?: number }).status !== undefined; // sipp -v exits non-zero but exists
  }
}
