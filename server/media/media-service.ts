/**
 * rtpengine's contract, done with mediasoup: offer / answer / delete by call, driven by the
 * routing script's flags. Signalling gets SDP text back and never sees a mediasoup object.
 * Also watches every call's media once a second: learns changed SSRCs, and ends calls whose
 * media stopped (rtpengine's --timeout).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { parseFlags } from './flags.js';
import type { LegStats } from './leg.js';
import { MediaSession, type Side } from './media-session.js';
import { PortAllocator } from './port-allocator.js';
import { routerCodecsFor, type SdpCodec } from './codecs.js';
import { parseRemote, SdpError } from './sdp.js';
import type { TapPort } from './tap-port.js';
import { WorkerPool } from './worker-pool.js';

export interface MediaOptions {
  workers: number;
  listenIp: string;
  announcedAddress: string;
  minPort: number;
  maxPort: number;
  /** seconds without RTP from a party that should be sending before the call ends (0: never) */
  timeout: number;
  /** ms to wait for a phone's first packet before sending to its SDP address anyway */
  latchTimeout: number;
  /** ms between checks of every call's media */
  checkInterval: number;
  workerLogLevel: 'debug' | 'warn' | 'error' | 'none';
}

export interface MediaEvents {
  /** the call's media is gone (timeout, DTLS failure, worker death): end the call */
  end: [callKey: string, reason: string];
}

export { SdpError };

export class MediaService extends EventEmitter<MediaEvents> {
  readonly pool: WorkerPool;
  private readonly ports: PortAllocator;
  private readonly sessions = new Map<string, MediaSession>();
  private readonly creating = new Map<string, Promise<MediaSession>>();
  private readonly silence = new Map<object, { bytes: number; since: number }>();
  /** bytes each leg had at the last check, to count totals across calls */
  private readonly seen = new Map<object, { received: number; sent: number }>();
  /** media bytes relayed since start (every leg of every call), for metrics */
  readonly totals = { bytesReceived: 0, bytesSent: 0 };
  private checker: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(private readonly opts: MediaOptions, private readonly log: Logger) {
    super();
    this.pool = new WorkerPool({ count: opts.workers, logLevel: opts.workerLogLevel }, log);
    this.ports = new PortAllocator(opts.minPort, opts.maxPort);
    // mediasoup closes a dead worker's routers before it reports the death: the calls whose
    // router is closed are the ones that were on it
    this.pool.onWorkerDied = () => {
      for (const [key, s] of this.sessions) {
        if (s.router.closed) this.fail(key, 'media worker died');
      }
    };
  }

  async start(): Promise<void> {
    await this.pool.start();
    this.checker = setInterval(() => {
      this.check().catch((e: unknown) => this.log.warn({ err: e }, 'media check failed'));
    }, this.opts.checkInterval);
    this.checker.unref();
  }

  /** The call's session; made at its first offer, with a router numbered like that offer. */
  private async session(key: string, firstOffer: string): Promise<MediaSession> {
    const s = this.sessions.get(key);
    if (s) return s;
    let p = this.creating.get(key);
    if (!p) {
      let codecs: SdpCodec[] = [];
      try {
        codecs = parseRemote(firstOffer).codecs;
      } catch {
        // the offer itself is refused a moment later, with its reason
      }
      p = this.pool.createRouter(routerCodecsFor(codecs)).then((router) => {
        const session = new MediaSession(router, this.ports, { listenIp: this.opts.listenIp, announcedAddress: this.opts.announcedAddress, latchTimeout: this.opts.latchTimeout });
        session.on('failed', (why) => this.fail(key, why));
        session.on('warning', (msg) => this.log.warn({ call: key }, msg));
        this.sessions.set(key, session);
        return session;
      });
      this.creating.set(key, p);
      p.finally(() => this.creating.delete(key)).catch(() => {});
    }
    return p;
  }

  /** rtpengine_offer: the SDP `side` sent, rewritten for the other side. Throws SdpError. */
  async offer(key: string, side: Side, branch: number, sdp: string, flags: string | null): Promise<string> {
    const s = await this.session(key, sdp);
    try {
      return await s.offer(side, branch, sdp, parseFlags(flags).kind);
    } catch (e) {
      // an initial offer we cannot carry leaves nothing behind (488, no mediasoup object)
      if (!s.answered && s.legs().every((l) => !l.codecs)) this.delete(key);
      throw e;
    }
  }

  /** rtpengine_answer: the SDP `side` answered, rewritten for the offerer. Throws SdpError. */
  async answer(key: string, side: Side, branch: number, sdp: string): Promise<string> {
    const s = this.sessions.get(key);
    if (!s) throw new SdpError('no media session for this call', 500);
    return s.answer(side, branch, sdp);
  }

  /** The branch that answered 2xx; the other branches' legs go. */
  async select(key: string, branch: number): Promise<void> {
    await this.sessions.get(key)?.select(branch);
  }

  async dropBranch(key: string, branch: number): Promise<void> {
    await this.sessions.get(key)?.drop(branch);
  }

  /** A port for an audio tap on a live call. */
  async openTap(key: string): Promise<TapPort> {
    const s = this.sessions.get(key);
    if (!s) throw new Error('no media session for this call');
    return s.openTap();
  }

  /** The gateway answers the caller itself (wsbridge); returns our SDP answer. */
  async answerAsEndpoint(key: string, sdp: string, prefer: string[]): Promise<string> {
    const s = await this.session(key, sdp);
    try {
      return await s.answerAsEndpoint(sdp, prefer);
    } catch (e) {
      this.delete(key);
      throw e;
    }
  }

  /** rtpengine_delete: every mediasoup object of the call is freed. Idempotent. */
  delete(key: string): void {
    const s = this.sessions.get(key);
    if (!s) {
      this.creating.get(key)?.then(() => this.delete(key), () => {});
      return;
    }
    this.sessions.delete(key);
    for (const leg of s.legs()) {
      this.silence.delete(leg);
      this.seen.delete(leg);
    }
    s.close();
  }

  has(key: string): boolean {
    return this.sessions.has(key);
  }

  get size(): number {
    return this.sessions.size;
  }

  get portsInUse(): number {
    return this.ports.inUse;
  }

  async stats(key: string): Promise<{ caller: LegStats | null; callees: Record<number, LegStats> } | null> {
    const s = this.sessions.get(key);
    return s ? s.stats() : null;
  }

  private fail(key: string, reason: string): void {
    if (!this.sessions.has(key)) return;
    this.log.warn({ call: key, reason }, 'media failed, ending the call');
    this.delete(key);
    this.emit('end', key, reason);
  }

  /** Once a second: SSRC changes on phone legs, and parties that stopped sending. */
  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const now = Date.now();
      for (const [key, s] of [...this.sessions]) {
        if (s.isClosed) continue;
        for (const leg of s.legs()) {
          try {
            const { bytesReceived, bytesSent } = await leg.poll();
            const before = this.seen.get(leg) ?? { received: 0, sent: 0 };
            this.totals.bytesReceived += Math.max(0, bytesReceived - before.received);
            this.totals.bytesSent += Math.max(0, bytesSent - before.sent);
            this.seen.set(leg, { received: bytesReceived, sent: bytesSent });
            if (!s.answered || this.opts.timeout <= 0 || !leg.remote) continue;
            // a party that is not meant to send (on hold: recvonly/inactive) cannot time out
            const sending = leg.remote.direction === 'sendrecv' || leg.remote.direction === 'sendonly';
            const seen = this.silence.get(leg);
            if (!seen || bytesReceived !== seen.bytes || !sending) {
              this.silence.set(leg, { bytes: bytesReceived, since: now });
            } else if (now - seen.since > this.opts.timeout * 1000) {
              this.fail(key, `no RTP from ${leg.name} for ${this.opts.timeout} s`);
              break;
            }
          } catch (e) {
            if (!s.isClosed) this.log.debug({ err: e, call: key }, 'media check failed');
          }
        }
      }
    } finally {
      this.checking = false;
    }
  }

  close(): void {
    if (this.checker) clearInterval(this.checker);
    for (const key of [...this.sessions.keys()]) this.delete(key);
    this.pool.close();
  }
}
