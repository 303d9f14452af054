/**
 * SIPp (Debian's sip-tester) as a real SIP peer: runs one of test/sipp/*.xml against the
 * gateway on loopback, bounded by SIPp's own -timeout and by a kill after it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../server/paths.js';

export interface SippRun {
  scenario: string;
  /** host:port to send to (client scenarios) */
  target?: string;
  /** local SIP port (0: SIPp picks) */
  port?: number;
  service?: string;
  calls?: number;
  rate?: number;
  /** call hold (pause) in ms */
  holdMs?: number;
  auth?: { user: string; password: string };
  vars?: Record<string, string | number>;
  timeoutS?: number;
  extra?: string[];
}

export interface SippResult {
  code: number | null;
  output: string;
  successful: number;
  failed: number;
}

export const scenarioPath = (name: string): string => path.join(projectRoot, 'test', 'sipp', name);

/**
 * Starts SIPp. Without `port`, the caller must not care which one it gets: SIPp's default
 * is 5060, which another SIP server on this machine may hold, so we pick a free one.
 */
export function sipp(run: SippRun): { done: Promise<SippResult>; pid: number | undefined } {
  const timeout = run.timeoutS ?? 20;
  const port = run.port ?? 20000 + Math.floor(Math.random() * 20000);
  const args = ['-sf', scenarioPath(run.scenario), '-i', '127.0.0.1', '-p', String(port), '-m', String(run.calls ?? 1),
    '-nostdin', '-timeout', `${timeout}s`, '-timeout_error', '-trace_err', '-error_file', `/tmp/sipp-${process.pid}-${Date.now()}-err.log`];
  if (run.service) args.push('-s', run.service);
  if (run.rate) args.push('-r', String(run.rate));
  if (run.holdMs !== undefined) args.push('-d', String(run.holdMs));
  if (run.auth) args.push('-au', run.auth.user, '-ap', run.auth.password);
  for (const [k, v] of Object.entries(run.vars ?? {})) args.push('-set', k, String(v));
  args.push(...(run.extra ?? []));
  if (run.target) args.push(run.target);
  const child = spawn('sipp', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), (timeout + 10) * 1000);
  const done = new Promise<SippResult>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, output, successful: lastCount(output, 'Successful call'), failed: lastCount(output, 'Failed call') });
    });
  });
  return { done, pid: child.pid };
}

function lastCount(output: string, label: string): number {
  const lines = output.split('\n').filter((l) => l.includes(label));
  const m = lines.length ? /\|\s*(\d+)\s*$/.exec(lines[lines.length - 1]!.trim()) : null;
  return m ? Number(m[1]) : 0;
}

/** Registers `user` with a Contact on `contactPort` (where another SIPp will answer). */
export async function registerWithSipp(target: string, user: string, password: string, contactPort: number): Promise<SippResult> {
  return sipp({ scenario: 'register.xml', target, service: user, auth: { user, password }, vars: { contact_port: contactPort, expires: 3600 } }).done;
}
