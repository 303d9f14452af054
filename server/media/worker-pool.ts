/**
 * mediasoup workers, one per core by default. Each call's router lives on the worker with
 * the fewest routers. A worker that dies is replaced, and the calls it carried are told
 * (they end cleanly: BYE both ways) through the `died` callback.
 */
import * as mediasoup from 'mediasoup';
import type { Router, RtpCodecCapability, Worker } from 'mediasoup/types';
import type { Logger } from 'pino';
import { ROUTER_CODECS } from './codecs.js';

export interface WorkerPoolOptions {
  count: number;
  logLevel: 'debug' | 'warn' | 'error' | 'none';
}

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private closed = false;
  /** called when a worker died (its routers are closed by then) */
  onWorkerDied: (worker: Worker) => void = () => {};
  private readonly routers = new Map<Worker, Set<Router>>();

  constructor(private readonly opts: WorkerPoolOptions, private readonly log: Logger) {}

  async start(): Promise<void> {
    for (let i = 0; i < this.opts.count; i++) this.workers.push(await this.spawn());
  }

  private async spawn(): Promise<Worker> {
    const worker = await mediasoup.createWorker({ logLevel: this.opts.logLevel });
    this.routers.set(worker, new Set());
    worker.on('died', (err) => {
      this.routers.delete(worker);
      const idx = this.workers.indexOf(worker);
      if (idx >= 0) this.workers.splice(idx, 1);
      if (this.closed) return;
      this.log.error({ pid: worker.pid, err }, 'mediasoup worker died; replacing it');
      this.onWorkerDied(worker);
      void this.spawn()
        .then((w) => {
          if (this.closed) w.close();
          else this.workers.push(w);
        })
        .catch((e: unknown) => this.log.error({ err: e }, 'could not start a replacement mediasoup worker'));
    });
    this.log.info({ pid: worker.pid }, 'mediasoup worker started');
    return worker;
  }

  /** A router for one call on the least loaded worker. */
  async createRouter(mediaCodecs: RtpCodecCapability[] = ROUTER_CODECS): Promise<Router> {
    const worker = [...this.workers].sort((a, b) => (this.routers.get(a)?.size ?? 0) - (this.routers.get(b)?.size ?? 0))[0];
    if (!worker) throw new Error('no mediasoup worker is running');
    const router = await worker.createRouter({ mediaCodecs });
    const set = this.routers.get(worker)!;
    set.add(router);
    router.observer.once('close', () => set.delete(router));
    return router;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Routers alive per worker (for the API and tests: after calls end, none should be). */
  async dump(): Promise<{ pid: number; routers: number; transports: number }[]> {
    const out = [];
    for (const w of this.workers) {
      const d = await w.dump();
      let transports = 0;
      for (const r of this.routers.get(w) ?? []) transports += (await r.dump()).transportIds.length;
      out.push({ pid: w.pid, routers: d.routerIds.length, transports });
    }
    return out;
  }

  async usage(): Promise<{ pid: number; cpuUser: number; cpuSystem: number; maxRss: number }[]> {
    return Promise.all(this.workers.map(async (w) => {
      const u = await w.getResourceUsage();
      return { pid: w.pid, cpuUser: u.ru_utime, cpuSystem: u.ru_stime, maxRss: u.ru_maxrss };
    }));
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) w.close();
    this.workers.length = 0;
  }
}
