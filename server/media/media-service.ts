/**
 * rtpengine's contract, done with mediasoup: offer / answer / delete by call, driven by the
 * routing script's flags. Signalling gets SDP text back and never sees a mediasoup object.
 * A phone's new SSRC is adopted when its worker reports RTP nobody claims (event-driven);
 * every call's counters are read every fifth check, to end calls whose media stopped
 * (rtpengine's --timeout) and to learn again where a phone's traffic stopped while other
 * bytes arrive (a NAT rebinding).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { parseFlags } from './flags.js';
import type { Leg, LegStats } from './leg.js';
import { PlainLeg } from './plain-leg.js';
import { MediaSession, type Side } from './media-session.js';
import { PortAllocator } from './port-allocator.js';
import { isDtmf, isRoutable, routerCodecsFor, type SdpCodec } from './codecs.js';
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
  /** in-sequence packets of one SSRC needed from a source a phone's SDP does not name before latching to it */
  latchPackets: number;
  /** ms between checks of every call's media */
  checkInterval: number;
  /** ms an answered call's media goes on relaying after its deletion (rtpengine's delete-delay; 0: none) */
  teardownLinger: number;
  /** seconds an idle shared router waits for the next call */
  routerIdleTimeout: number;
  workerLogLevel: 'debug' | 'warn' | 'error' | 'none';
}

export interface MediaEvents {
  /** the call's media is gone (timeout, DTLS failure, worker death): end the call */
  end: [callKey: string, reason: string];
}

export { SdpError };

/** phone legs of one worker asked at most when it reports an SSRC nobody claims */
const MAX_SEARCH = 64;
/**
 * legs that took their port without hearing their phone, asked at most per report: the newest
 * (a phone starts sending just after its call is answered); older ones have their own watch.
 * Under load many legs take their port unheard (the fallback timer runs before the sniffer's
 * queued packets), and asking all of them for every new SSRC fed the load it came from.
 */
const MAX_UNHEARD = 8;

export class MediaService extends EventEmitter<MediaEvents> {
  readonly pool: WorkerPool;
  private readonly ports: PortAllocator;
  private readonly sessions = new Map<string, MediaSession>();
  private readonly creating = new Map<string, Promise<MediaSession>>();
  /** bytes each leg had at the last check, to count totals across calls */
  private readonly seen = new Map<object, { received: number; sent: number; at: number }>();
  /** media bytes relayed since start (every leg of every call), for metrics */
  readonly totals = { bytesReceived: 0, bytesSent: 0 };
  private checker: NodeJS.Timeout | null = null;
  private checking = false;
  private ticks = 0;
  /** SSRCs (by worker) being looked for among the legs, so that a burst of reports asks once */
  private readonly ssrcChecks = new Set<string>();
  /** worker:port pairs whose unknown-source report was looked at in the last second */
  private readonly sourceChecks = new Set<string>();
  /** workers whose legs are being searched for a reported SSRC */
  private readonly searching = new Set<number>();
  /** deleted sessions still relaying for teardownLinger ms, each with the timer that closes it */
  private readonly lingering = new Map<MediaSession, NodeJS.Timeout>();

  constructor(private readonly opts: MediaOptions, private readonly log: Logger) {
    super();
    this.pool = new WorkerPool({ count: opts.workers, logLevel: opts.workerLogLevel, routerIdleMs: opts.routerIdleTimeout * 1000 }, log);
    this.ports = new PortAllocator(opts.minPort, opts.maxPort);
    // mediasoup closes a dead worker's routers before it reports the death: the calls whose
    // router is closed are the ones that were on it
    this.pool.onWorkerDied = () => {
      for (const [key, s] of this.sessions) {
        if (s.router.closed) this.fail(key, 'media worker died');
      }
      for (const [s, timer] of this.lingering) {
        if (!s.router.closed) continue;
        clearTimeout(timer);
        this.lingering.delete(s);
        s.close();
      }
    };
    this.pool.onUnknownSource = (pid, port) => {
      this.checkSource(pid, port).catch((e: unknown) => this.log.debug({ err: e, pid, port }, 'checking where a phone sends from failed'));
    };
    this.pool.onUnclaimedSsrc = (pid, ssrc, pt) => {
      this.adoptSsrc(pid, ssrc, pt).catch((e: unknown) => this.log.debug({ err: e, pid, ssrc }, 'looking for a new SSRC failed'));
    };
  }

  async start(): Promise<void> {
    await this.pool.start();
    this.checker = setInterval(() => {
      this.check().catch((e: unknown) => this.log.warn({ err: e }, 'media check failed'));
    }, this.opts.checkInterval);
    this.checker.unref();
  }

  /** The call's session; made at its first offer, with a router numbered like that offer's codecs. */
  private async session(key: string, codecs: SdpCodec[]): Promise<MediaSession> {
    const s = this.sessions.get(key);
    if (s) return s;
    let p = this.creating.get(key);
    if (!p) {
      p = this.pool.acquire(routerCodecsFor(codecs)).then((router) => {
        const session = new MediaSession(router, () => this.pool.release(router), this.ports, { listenIp: this.opts.listenIp, announcedAddress: this.opts.announcedAddress, latchTimeout: this.opts.latchTimeout, latchPackets: this.opts.latchPackets });
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
    // parsed once, here: the router's numbering and the session take the same description
    const remote = parseRemote(sdp);
    // an offer we cannot carry is refused before any mediasoup object exists for it
    if (!this.sessions.has(key) && !this.creating.has(key)) {
      const codecs = remote.codecs;
      if (!codecs.some((c) => isRoutable(c) && !isDtmf(c))) {
        throw new SdpError(`no codec we can carry (offered: ${codecs.map((c) => c.name).join(', ') || 'none'})`);
      }
    }
    const s = await this.session(key, remote.codecs);
    try {
      return await s.offer(side, branch, remote, parseFlags(flags).kind);
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
    let codecs: SdpCodec[] = [];
    try {
      codecs = parseRemote(sdp).codecs;
    } catch {
      // the offer itself is refused a moment later, with its reason
    }
    const s = await this.session(key, codecs);
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
    for (const leg of s.legs()) this.seen.delete(leg);
    // Like rtpengine's delete-delay: a BYE and the last RTP before it race (SIPp's and phones'
    // streams end as the BYE leaves, the far side's stream a moment later), so an answered
    // call's transports relay a while longer; nothing finds the session any more meanwhile.
    const linger = this.opts.teardownLinger;
    if (linger > 0 && s.answered && !s.isClosed && !s.router.closed) {
      const timer = setTimeout(() => {
        this.lingering.delete(s);
        s.close();
      }, linger);
      timer.unref();
      this.lingering.set(s, timer);
      return;
    }
    s.close();
  }

  /** sessions deleted but still relaying (teardownLinger) */
  get lingeringCount(): number {
    return this.lingering.size;
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

  /**
   * Asks a leg's counters (one request to its worker): adds them to the totals, and notes
   * whether the party sent anything since the last time (Leg.quietSince).
   */
  private async pollLeg(leg: Leg, now: number): Promise<void> {
    const { bytesReceived, bytesSent } = await leg.poll();
    const before = this.seen.get(leg) ?? { received: 0, sent: 0, at: now };
    this.totals.bytesReceived += Math.max(0, bytesReceived - before.received);
    this.totals.bytesSent += Math.max(0, bytesSent - before.sent);
    if (bytesReceived !== before.received) leg.quietSince = null;
    else leg.quietSince ??= before.at;
    this.seen.set(leg, { received: bytesReceived, sent: bytesSent, at: now });
  }

  /**
   * A worker dropped RTP of `ssrc` for want of a producer: some phone leg on it sends a new
   * SSRC from the source it latched to (strays from elsewhere are dropped before, unreported).
   * Which one: the relaying phone legs of that worker whose call uses that payload type are
   * read twice, 30 ms apart; the one
   * whose bytes in between were all unclaimed (its traffic stopped being claimed) adopts it.
   * Only when a worker reports; a burst of reports for one SSRC asks once.
   */
  private async adoptSsrc(pid: number, ssrc: number, pt: number): Promise<void> {
    const key = `${pid}:${ssrc}`;
    // one search per worker at a time; reports of the same SSRC keep coming until it is
    // adopted (or its producer, on the way, claims it): each SSRC is looked at once per 250 ms,
    // so that a burst of reports costs one pass over the calls, not one per packet
    if (this.ssrcChecks.has(key) || this.searching.has(pid)) return;
    this.ssrcChecks.add(key);
    setTimeout(() => this.ssrcChecks.delete(key), 250).unref();
    const legs: PlainLeg[] = [];
    const unheard: PlainLeg[] = [];
    for (const s of this.sessions.values()) {
      if (s.isClosed || (s.router.appData.worker as { pid?: number } | undefined)?.pid !== pid) continue;
      for (const leg of s.legs()) {
        // a browser's SSRC is in its SDP, a phone's just learnt one has its producer on the way
        // (their packets before the producer exists are reported too)
        if (leg.remote?.ssrc === ssrc || (leg instanceof PlainLeg && leg.learntSsrc === ssrc)) return;
        // a phone sends the payload types of its call (a browser's RTX or probes are others)
        if (leg instanceof PlainLeg && leg.relaying && (leg.codecs?.media.pt === pt || leg.codecs?.dtmf?.pt === pt)) (leg.learntSsrc === null ? unheard : legs).push(leg);
      }
    }
    // bounded: past that many legs to ask, the periodic check (and a leg's own watch) learns it
    if (!unheard.length && (!legs.length || legs.length > MAX_SEARCH)) return;
    this.searching.add(pid);
    try {
      // a leg that took its port before hearing its phone (answered, nothing came in time)
      // has no SSRC yet: one reading tells which of those few receives
      if (unheard.length) {
        const read = await Promise.all(unheard.slice(-MAX_UNHEARD).map(async (leg) => ({ leg, c: await leg.counters() })));
        const hit = read.filter((x) => x.c.unclaimed > 0).sort((a, b) => b.c.unclaimed - a.c.unclaimed)[0];
        if (hit) return await hit.leg.adopt(ssrc);
      }
      if (!legs.length || legs.length > MAX_SEARCH) return;
      await Promise.all(legs.map((l) => l.counters()));
      await new Promise((r) => setTimeout(r, 30));
      const read = await Promise.all(legs.map(async (leg) => ({ leg, c: await leg.counters() })));
      const hit = read.filter((x) => x.c.unclaimed > 0 && x.c.claimed === 0).sort((a, b) => b.c.unclaimed - a.c.unclaimed)[0];
      if (hit) await hit.leg.adopt(ssrc);
    } finally {
      this.searching.delete(pid);
    }
  }

  /**
   * A worker dropped RTP that reached the phone leg on `port` from another address: that leg
   * looks again (PlainLeg.checkSource). One lookup per port and second, however many come.
   */
  private async checkSource(pid: number, port: number): Promise<void> {
    const key = `${pid}:${port}`;
    if (this.sourceChecks.has(key)) return;
    this.sourceChecks.add(key);
    setTimeout(() => this.sourceChecks.delete(key), 1000).unref();
    for (const s of this.sessions.values()) {
      if (s.isClosed || (s.router.appData.worker as { pid?: number } | undefined)?.pid !== pid) continue;
      for (const leg of s.legs()) {
        if (leg instanceof PlainLeg && leg.localPort === port) return leg.checkSource();
      }
    }
  }

  /**
   * Every check interval, every fifth (phones) or fifteenth (browsers) time: each leg's
   * counters (one request per leg), for the totals, for timeouts (parties silent for longer
   * than the timeout end their call) and for phones whose traffic stopped while other bytes
   * arrive (PlainLeg.poll learns them again). A worker that reports RTP from unknown
   * addresses (our patched one) tells of a phone that moved at once: its phones are then read
   * every fifteenth time too (a 3-minute call costs 24 requests, not 48).
   */
  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const now = Date.now();
      // phones every fifth check (a phone that now sends from elsewhere is learnt again) unless
      // the worker reports that itself, browsers (ICE and DTLS keep their path) every
      // fifteenth: timeouts are tens of seconds
      const tick = ++this.ticks;
      const phones = tick % (this.pool.features.unknownSourceWarnings ? 15 : 5) === 0;
      const browsers = tick % 15 === 0;
      // a call younger than one phone period is not read yet: nothing of it can have timed out,
      // a phone that took its port unheard has its own watch, and a short call (most of a
      // busy server's) costs no stats request at all
      const young = now - 5 * this.opts.checkInterval;
      for (const [key, s] of [...this.sessions]) {
        if (s.isClosed || s.createdAt > young) continue;
        for (const leg of s.legs()) {
          try {
            if (leg instanceof PlainLeg ? phones : browsers) await this.pollLeg(leg, now);
            if (s.answeredAt !== null && this.opts.timeout > 0 && leg.remote && leg.quietSince !== null) {
              // a party that is not meant to send (on hold: recvonly/inactive) cannot time out
              const sending = leg.remote.direction === 'sendrecv' || leg.remote.direction === 'sendonly';
              const quietFor = now - Math.max(leg.quietSince, s.answeredAt);
              if (sending && quietFor > this.opts.timeout * 1000) {
                this.fail(key, `no RTP from ${leg.name} for ${this.opts.timeout} s`);
                break;
              }
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
    for (const [s, timer] of this.lingering) {
      clearTimeout(timer);
      s.close();
    }
    this.lingering.clear();
    this.pool.close();
  }
}
