/**
 * The gateway as operators run it: `node dist/server/main.js --config FILE` in a child
 * process, ready when it logs "gateway listening" (whose line gives the ports it bound).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../server/paths.js';

export interface GatewayProcess {
  child: ChildProcess;
  udp: number;
  http: number;
  /** everything it wrote so far (stdout and stderr) */
  output: () => string;
}

/** Starts it with `nodeArgs` before the script (e.g. --expose-gc); rejects if it exits or says nothing in 30 s. */
export function startGatewayProcess(configFile: string, nodeArgs: string[] = []): Promise<GatewayProcess> {
  const main = path.join(projectRoot, 'dist', 'server', 'main.js');
  const child = spawn(process.execPath, [...nodeArgs, main, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "gateway listening" in 30 s:\n${out}`)), 30_000);
    const check = (): void => {
      const line = out.split('\n').find((l) => l.includes('"gateway listening"'));
      if (!line) return;
      clearTimeout(t);
      child.stdout!.off('data', check);
      const j = JSON.parse(line) as { udp: number; http: number };
      resolve({ child, udp: j.udp, http: j.http, output: () => out });
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the gateway exited with ${code}:\n${out}`));
    });
  });
}
