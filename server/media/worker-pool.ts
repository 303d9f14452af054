/**
 * mediasoup workers, one per core by default, and their routers. A router is shared by the
 * calls whose payload-type numbering is the same (most calls from the same kind of phone or
 * browser): making one costs more than a call's transports, and calls on one router do not
 * hear each other (consumers take only the producers they are given). The least loaded
 * worker takes a new call; a router goes `routerIdleMs` after its last call does (making one
 * cost a sixth of a short call's CPU when every call made its own). A worker that dies is
 * replaced, and the calls it carried are told through `onWorkerDied`.
 *
 * Workers log their 'rtp' warnings to us: "no suitable Producer for received RTP packet" is
 * how a phone's new SSRC is noticed the moment it arrives (`onUnclaimedSsrc`), and (our
 * patched worker) "ignoring RTP packet from unknown IP:port [localPort]" how a phone that now
 * sends from elsewhere (a NAT rebinding) is (`onUnknownSource`), without asking every leg for
 * its counters. A worker that floods us with them (someone sending junk to a latched phone's
 * port) has the tag turned off for a while.
 *
 * At start the pool tries what its worker binary can do beyond stock mediasoup
 * (worker-features.ts: our patched build, or the prebuilt download without the patches) and
 * says so once; every router it makes carries the answer in appData.workerFeatures, which the
 * phone legs read (plain-leg.ts).
 */
import * as mediasoup from 'mediasoup';
import type { Router, RtpCodecCapability, Worker } from 'mediasoup/types';
import type { Logger } from 'pino';
import { ROUTER_CODECS } from './codecs.js';
import { NO_FEATURES, workerFeatures, type WorkerFeatures } from './worker-features.js';

/** the worker's warning for RTP dropped for want of a producer (Transport::ReceiveRtpPacket) */
const UNCLAIMED = /^\[pid:(\d+)\] .*no suitable Producer for received RTP packet \[ssrc:(\d+), payloadType:(\d+)/;
/** our patched worker's warning for RTP from an address a connected PlainTransport does not take (unknown-source-warning) */
const UNKNOWN_SOURCE = /^\[pid:(\d+)\] .*ignoring RTP packet from unknown IP:port \[localPort:(\d+)\]/;
const WARNINGS_PER_SECOND = 300;
const MUTE_MS = 10_000;

/** mediasoup's log listeners are one per process: they serve every pool started in it */
const pools = new Set<WorkerPool>();
function listen(pool: WorkerPool): void {
  if (pools.size === 0) mediasoup.setLogEventListeners({ onwarn: (_namespace, log) => { for (const p of pools) p.workerWarning(log); } });
  pools.add(pool);
}

export interface WorkerPoolOptions {
  count: number;
  logLevel: 'debug' | 'warn' | 'error' | 'none';
  /** how long a shared router with no call left stays open for the next call (0: closed at once) */
  routerIdleMs: number;
}

interface SharedRouter {
  router: Router | null;
  users: number;
  ready: Promise<Router>;
  /** set while no call uses it: closes it when it fires */
  idle: NodeJS.Timeout | null;
}

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private closed = false;
  /** called when a worker died (its routers are closed by then) */
  onWorkerDied: (worker: Worker) => void = () => {};
  /** a worker dropped RTP of an SSRC no producer of that transport claims */
  onUnclaimedSsrc: (pid: number, ssrc: number, payloadType: number) => void = () => {};
  /** a worker dropped RTP that reached a connected PlainTransport (on `localPort`) from another address */
  onUnknownSource: (pid: number, localPort: number) => void = () => {};
  /** every worker warning, while the start-up self-test listens for one */
  private probe: ((log: string) => void) | null = null;
  /** rtp warnings per worker in the current second, to turn them off under a flood */
  private readonly warnings = new Map<number, { second: number; count: number; muted: boolean }>();
  private readonly routers = new Map<Worker, Set<Router>>();
  /** calls per worker, and the shared routers by worker and numbering */
  private readonly load = new Map<Worker, number>();
  private readonly shared = new Map<string, SharedRouter>();
  /** what the worker binary can do beyond stock mediasoup (known after start) */
  features: WorkerFeatures = NO_FEATURES;

  constructor(private readonly opts: WorkerPoolOptions, private readonly log: Logger) {}

  async start(): Promise<void> {
    listen(this);
    for (let i = 0; i < this.opts.count; i++) this.workers.push(await this.spawn());
    const first = this.workers[0];
    if (first) {
      this.features = await workerFeatures(first, (listener) => {
        this.probe = listener;
        return () => {
          this.probe = null;
        };
      });
      const fast = this.features.catchAllSsrc && this.features.earlyReplay;
      this.log.info({ ...this.features }, fast
        ? 'mediasoup worker has the gateway\'s patches: phone legs relay from their first packet'
        : 'mediasoup worker without the gateway\'s patches (prebuilt?): phone legs learn their SSRC before relaying');
    }
  }

  /** A warning one of the process's workers logged (each pool takes its own workers'). */
  workerWarning(log: string): void {
    this.probe?.(log);
    const ssrc = UNCLAIMED.exec(log);
    const moved = ssrc ? null : UNKNOWN_SOURCE.exec(log);
    const hit = ssrc ?? moved;
    if (!hit) return;
    const pid = Number(hit[1]);
    if (!this.workers.some((w) => w.pid === pid)) return;
    const now = Math.floor(Date.now() / 1000);
    let w = this.warnings.get(pid);
    if (!w || w.second !== now) {
      w = { second: now, count: 0, muted: w?.muted ?? false };
      this.warnings.set(pid, w);
    }
    if (++w.count === WARNINGS_PER_SECOND && !w.muted) this.mute(pid, w);
    if (ssrc) this.onUnclaimedSsrc(pid, Number(ssrc[2]), Number(ssrc[3]));
    else this.onUnknownSource(pid, Number(hit[2]));
  }

  /** Too many: the worker stops sending its rtp warnings for a while (the periodic check remains). */
  private mute(pid: number, w: { muted: boolean }): void {
    const worker = this.workers.find((x) => x.pid === pid);
    if (!worker) return;
    w.muted = true;
    this.log.warn({ pid }, `mediasoup worker reported more than ${WARNINGS_PER_SECOND} unclaimed RTP packets in a second; not listening for ${MUTE_MS / 1000} s`);
    void worker.updateSettings({ logTags: [] }).catch(() => {});
    setTimeout(() => {
      w.muted = false;
      if (!worker.closed) void worker.updateSettings({ logTags: ['rtp'] }).catch(() => {});
    }, MUTE_MS).unref();
  }

  private async spawn(): Promise<Worker> {
    // 'rtp' warnings (at least 'warn') tell us of SSRCs no producer claims: see onUnclaimedSsrc
    const worker = await mediasoup.createWorker({ logLevel: this.opts.logLevel === 'debug' ? 'debug' : 'warn', logTags: ['rtp'] });
    this.routers.set(worker, new Set());
    this.load.set(worker, 0);
    worker.on('died', (err) => {
      this.routers.delete(worker);
      this.load.delete(worker);
      for (const [key, entry] of this.shared) if (entry.router?.closed) this.shared.delete(key);
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

  /** A router of its own (tests, tools). */
  async createRouter(mediaCodecs: RtpCodecCapability[] = ROUTER_CODECS): Promise<Router> {
    const worker = this.leastLoaded();
    const router = await worker.createRouter({ mediaCodecs, appData: { workerFeatures: this.features } });
    this.track(worker, router);
    return router;
  }

  private leastLoaded(): Worker {
    const worker = [...this.workers].sort((a, b) => (this.load.get(a) ?? 0) - (this.load.get(b) ?? 0))[0];
    if (!worker) throw new Error('no mediasoup worker is running');
    return worker;
  }

  private track(worker: Worker, router: Router): void {
    const set = this.routers.get(worker)!;
    set.add(router);
    router.observer.once('close', () => set.delete(router));
  }

  /**
   * A router numbered `mediaCodecs` for one more call, on the least loaded worker (shared
   * with that worker's calls of the same numbering); give it back with release().
   */
  async acquire(mediaCodecs: RtpCodecCapability[]): Promise<Router> {
    const worker = this.leastLoaded();
    this.load.set(worker, (this.load.get(worker) ?? 0) + 1);
    const key = `${worker.pid}|${mediaCodecs.map((c) => `${c.mimeType}/${c.clockRate}=${c.preferredPayloadType}`).join(',')}`;
    let entry = this.shared.get(key);
    if (!entry || entry.router?.closed) {
      const ready = worker.createRouter({ mediaCodecs, appData: { workerFeatures: this.features } });
      entry = { router: null, users: 0, ready, idle: null };
      this.shared.set(key, entry);
      const e = entry;
      let router: Router;
      try {
        router = await ready;
      } catch (err) {
        this.shared.delete(key);
        this.load.set(worker, (this.load.get(worker) ?? 1) - 1);
        throw err;
      }
      e.router = router;
      this.track(worker, router);
      router.appData.key = key;
      router.appData.worker = worker;
    }
    if (entry.idle) {
      clearTimeout(entry.idle);
      entry.idle = null;
    }
    entry.users++;
    return entry.ready;
  }

  release(router: Router): void {
    const key = router.appData.key as string | undefined;
    const worker = router.appData.worker as Worker | undefined;
    if (worker && this.load.has(worker)) this.load.set(worker, Math.max(0, (this.load.get(worker) ?? 1) - 1));
    const entry = key ? this.shared.get(key) : undefined;
    if (!entry || entry.router !== router) return;
    if (--entry.users > 0) return;
    const drop = (): void => {
      // the entry may be gone already (its worker died) and the key taken by a new router
      if (this.shared.get(key!) === entry) this.shared.delete(key!);
      router.close();
    };
    if (this.opts.routerIdleMs <= 0 || this.closed) return drop();
    entry.idle = setTimeout(drop, this.opts.routerIdleMs);
    entry.idle.unref();
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
    pools.delete(this);
    for (const entry of this.shared.values()) if (entry.idle) clearTimeout(entry.idle);
    this.shared.clear();
    for (const w of this.workers) w.close();
    this.workers.length = 0;
  }
}
