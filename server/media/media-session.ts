/**
 * The media of one call: rtpengine's offer/answer on a mediasoup router. The caller's leg
 * and one leg per forked branch; an offer from one side produces the SDP for the other,
 * the answer fixes the codec both speak and wires producers to consumers. Operations run
 * one at a time per call (a 183 and its 200 may race in).
 */
import { EventEmitter } from 'node:events';
import type { Producer, Router } from 'mediasoup/types';
import type { Side } from '../sip/dialog.js';
import { isDtmf, isRoutable, negotiate, type LegCodecs, type SdpCodec } from './codecs.js';
import type { Leg, LegStats } from './leg.js';
import { PlainLeg } from './plain-leg.js';
import type { PortAllocator } from './port-allocator.js';
import { answerDirection, MID_EXT_ID, parseRemote, routableCodecs, SdpError, writeLocal, type LegKind, type LocalMedia, type RemoteMedia } from './sdp.js';
import { TapPort } from './tap-port.js';
import { WebRtcLeg } from './webrtc-leg.js';

export type { Side } from '../sip/dialog.js';


export interface SessionOptions {
  listenIp: string;
  announcedAddress: string;
  latchTimeout: number;
  latchPackets: number;
}

interface Offer {
  side: Side;
  branch: number;
  codecs: SdpCodec[];
  remote: RemoteMedia;
}

export interface SessionEvents {
  failed: [string];
  warning: [string];
}

export class MediaSession extends EventEmitter<SessionEvents> {
  caller: Leg | null = null;
  readonly callees = new Map<number, Leg>();
  /** the branch whose callee is connected to the caller (early media, then the answer) */
  connected: number | null = null;
  answered = false;
  /** when the call was answered (media timeouts count from there), or null */
  answeredAt: number | null = null;
  private pending: Offer | null = null;
  /** last answer per leg, re-sent as is when the same SDP comes again (183 then 200) */
  private readonly answers = new Map<string, { sessionId: string; version: number; sdp: string; offer: Offer }>();
  private readonly versions = new Map<Leg, number>();
  private readonly sessionIds = new Map<Leg, string>();
  private readonly ports: number[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  /** what a party hears instead of the other party (a tap playing into the call) */
  private readonly overrides = new Map<Side, Producer>();
  private readonly taps = new Set<TapPort>();
  private closed = false;
  /** a wire() is queued and has not begun: events meanwhile need no other */
  private wirePending = false;
  readonly createdAt = Date.now();

  constructor(
    readonly router: Router,
    /** gives the (shared) router back when the call ends */
    private readonly releaseRouter: () => void,
    private readonly allocator: PortAllocator,
    private readonly opts: SessionOptions,
  ) {
    super();
  }

  /** Runs operations of this call one after the other. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => {});
    return p;
  }

  private legOf(side: Side, branch: number): Leg | null {
    return side === 'caller' ? this.caller : (this.callees.get(branch) ?? null);
  }

  private async createLeg(side: Side, branch: number, kind: LegKind): Promise<Leg> {
    const name = side === 'caller' ? 'caller' : `callee${branch}`;
    let leg: Leg | null = null;
    // a port of our range may be held by someone else (another process): take the next one
    for (let attempt = 0; leg === null; attempt++) {
      const port = this.allocator.allocate();
      if (port === null) throw new SdpError('no RTP port left', 503);
      this.ports.push(port);
      const base = { listenIp: this.opts.listenIp, announcedAddress: this.opts.announcedAddress, port };
      try {
        leg = kind === 'webrtc'
          ? await WebRtcLeg.create(name, this.router, base)
          : await PlainLeg.create(name, this.router, { ...base, latchTimeout: this.opts.latchTimeout, latchPackets: this.opts.latchPackets });
      } catch (e) {
        const busy = (e as NodeJS.ErrnoException).code === 'EADDRINUSE' || /address already in use|EADDRINUSE/i.test(String((e as Error).message));
        if (!busy || attempt >= 20) throw e;
      }
    }
    if (this.closed) {
      leg.close();
      throw new SdpError('call ended', 487);
    }
    const rewire = (): void => {
      // a leg says 'ready' and 'producer' in a row: one wiring queued (not yet begun) sees both
      if (this.wirePending) return;
      this.wirePending = true;
      this.run(() => {
        this.wirePending = false;
        return this.wire();
      }).catch((e: unknown) => this.emit('warning', `wiring ${name} failed: ${(e as Error).message}`));
    };
    leg.on('producer', rewire);
    leg.on('ready', rewire);
    leg.on('failed', (why) => this.emit('failed', `${name}: ${why}`));
    leg.on('warning', (msg) => this.emit('warning', `${name}: ${msg}`));
    if (side === 'caller') this.caller = leg;
    else this.callees.set(branch, leg);
    return leg;
  }

  /**
   * An SDP offer from `side` (on `branch` for the callee side), as text or already parsed;
   * returns the SDP to send to the other side, whose leg is of `toKind` (null: the same kind
   * as the offerer).
   */
  offer(side: Side, branch: number, sdp: string | RemoteMedia, toKind: LegKind | null): Promise<string> {
    return this.run(async () => {
      const remote = typeof sdp === 'string' ? parseRemote(sdp) : sdp;
      const codecs = routableCodecs(remote.codecs);
      if (!codecs.some((c) => !isDtmf(c))) throw new SdpError(`no codec we can carry (offered: ${remote.codecs.map((c) => c.name).join(', ') || 'none'})`);
      const from = this.legOf(side, branch) ?? (await this.createLeg(side, branch, remote.kind));
      await from.setRemote(remote);
      const otherSide: Side = side === 'caller' ? 'callee' : 'caller';
      const target = side === 'caller' ? branch : (this.connected ?? branch);
      const to = this.legOf(otherSide, target) ?? (await this.createLeg(otherSide, target, toKind ?? remote.kind));
      this.pending = { side, branch, codecs, remote };
      if (to.kind === 'webrtc' && to.remote === null) to.midExtId = MID_EXT_ID;
      return this.describe(to, codecs, remote.direction, true, remote);
    });
  }

  /**
   * The answer from `side`; returns the SDP for the offerer. The same answer again (a 200
   * repeating its 183's SDP) gives the same result without touching anything.
   */
  answer(side: Side, branch: number, sdp: string): Promise<string> {
    return this.run(async () => {
      const remote = parseRemote(sdp);
      const key = `${side}:${branch}`;
      const last = this.answers.get(key);
      if (last && last.sessionId === remote.origin.sessionId && last.version === remote.origin.version) return last.sdp;
      const offer = this.pending ?? last?.offer;
      if (!offer || offer.side === side) throw new SdpError('an answer without an offer', 500);
      const leg = this.legOf(side, branch);
      const offerer = this.legOf(offer.side, offer.side === 'caller' ? 0 : offer.branch);
      if (!leg || !offerer) throw new SdpError('an answer for a leg that is gone', 500);
      const neg = negotiate(offer.codecs, remote.codecs);
      if (!neg) throw new SdpError(`no common codec (offered ${offer.codecs.map((c) => c.name).join(', ')}; answered ${remote.codecs.map((c) => c.name).join(', ')})`);
      await leg.setRemote(remote);
      // Both parties speak the offer's payload types on this call (the router's numbering):
      // the answerer sends with the numbers we offered it, and is sent what the router numbers.
      if (neg.answerer.media.pt !== neg.offerer.media.pt || neg.answerer.dtmf?.pt !== neg.offerer.dtmf?.pt) {
        this.emit('warning', `the answer renumbered payload types (${neg.answerer.media.name} ${neg.offerer.media.pt} -> ${neg.answerer.media.pt}); it is sent the offer's numbers`);
      }
      neg.answerer = neg.offerer;
      const changed = (l: Leg, c: typeof neg.offerer): boolean => !l.codecs || l.codecs.media.pt !== c.media.pt || l.codecs.media.name !== c.media.name || l.codecs.dtmf?.pt !== c.dtmf?.pt;
      const offererChanged = changed(offerer, neg.offerer);
      const answererChanged = changed(leg, neg.answerer);
      offerer.codecs = neg.offerer;
      leg.codecs = neg.answerer;
      if (side === 'callee') this.connected = branch;
      else if (offer.side === 'callee') this.connected = offer.branch;
      const out = this.describe(offerer, [neg.offerer.media, ...(neg.offerer.dtmf ? [neg.offerer.dtmf] : [])], remote.direction, false, offer.remote);
      this.answers.set(key, { sessionId: remote.origin.sessionId, version: remote.origin.version, sdp: out, offer });
      if (this.pending === offer) this.pending = null;
      // The SDP for the offerer needs our ports and the codecs, not the producers: the answer
      // goes on its way now, and the producers and consumers are made right after it, as the
      // next operation of this call (whatever comes next, a select or a tap, waits for them).
      // That keeps two to four worker round trips out of every answer's path (INVITE->200).
      const produce = [...(offererChanged || !offerer.producer ? [offerer] : []), ...(answererChanged || !leg.producer ? [leg] : [])];
      this.run(async () => {
        for (const l of produce) await l.produce();
        await this.wire();
      }).catch((e: unknown) => {
        if (!this.closed) this.emit('failed', `connecting the answered media failed: ${(e as Error).message}`);
      });
      return out;
    });
  }

  /** A branch answered 2xx: the others are done (their legs closed). */
  select(branch: number): Promise<void> {
    return this.run(async () => {
      this.answered = true;
      this.answeredAt ??= Date.now();
      this.connected = branch;
      for (const [b, leg] of this.callees) {
        if (b === branch) continue;
        leg.close();
        this.callees.delete(b);
      }
      await this.wire();
    });
  }

  /** A branch failed: its leg goes (other branches may still answer). */
  drop(branch: number): Promise<void> {
    return this.run(async () => {
      const leg = this.callees.get(branch);
      if (!leg) return;
      leg.close();
      this.callees.delete(branch);
      if (this.connected === branch) this.connected = null;
    });
  }

  /**
   * Producers to consumers: the caller hears the connected callee; every callee with a
   * codec hears the caller. Idempotent: called after anything changes.
   */
  private async wire(): Promise<void> {
    if (this.closed || !this.caller) return;
    const caller = this.caller;
    const callee = this.connected !== null ? this.callees.get(this.connected) : undefined;
    const toCaller = this.overrides.get('caller') ?? callee?.producer;
    if (toCaller && !toCaller.closed) await caller.consume(toCaller);
    const toCallee = this.overrides.get('callee') ?? caller.producer;
    for (const leg of this.callees.values()) {
      if (toCallee && !toCallee.closed) await leg.consume(toCallee);
    }
    for (const tap of this.taps) {
      await tap.listen('caller').catch(() => false);
      await tap.listen('callee').catch(() => false);
    }
  }

  private connectedCallee(): Leg | null {
    return this.connected !== null ? (this.callees.get(this.connected) ?? null) : null;
  }

  /** A port for an audio tap: what each party sends, and a way to speak to each. */
  openTap(): Promise<TapPort> {
    return this.run(async () => {
      if (this.closed) throw new Error('the call has ended');
      const leg = (side: Side): Leg | null => (side === 'caller' ? this.caller : this.connectedCallee());
      const port = await TapPort.open(this.router, {
        codecs: (side) => leg(side)?.codecs ?? null,
        producer: (side) => leg(side)?.producer ?? null,
        override: (side, producer) => this.run(async () => {
          if (producer) this.overrides.set(side, producer);
          else this.overrides.delete(side);
          await this.wire();
        }),
      });
      this.taps.add(port);
      port.on('close', () => this.taps.delete(port));
      await port.listen('caller').catch(() => false);
      await port.listen('callee').catch(() => false);
      return port;
    });
  }

  /**
   * The gateway is the far end (wsbridge): answer the caller's offer ourselves, with the
   * first codec of theirs in `prefer`, and telephone-event (8 kHz) when offered.
   */
  answerAsEndpoint(sdp: string, prefer: string[]): Promise<string> {
    return this.run(async () => {
      const remote = parseRemote(sdp);
      const media = remote.codecs.find((c) => isRoutable(c) && !isDtmf(c) && prefer.includes(c.name.toLowerCase()));
      if (!media) throw new SdpError(`no codec we can play (offered: ${remote.codecs.map((c) => c.name).join(', ')})`);
      const dtmf = remote.codecs.find((c) => isDtmf(c) && isRoutable(c)) ?? null;
      const leg = this.caller ?? (await this.createLeg('caller', 0, remote.kind));
      await leg.setRemote(remote);
      leg.codecs = { media, dtmf } satisfies LegCodecs;
      await leg.produce();
      this.answered = true;
      this.answeredAt ??= Date.now();
      await this.wire();
      return this.describe(leg, [media, ...(dtmf ? [dtmf] : [])], answerDirection(remote.direction), false, remote);
    });
  }

  private describe(leg: Leg, codecs: SdpCodec[], direction: RemoteMedia['direction'], offering: boolean, shape: RemoteMedia): string {
    const t = leg.local();
    let version = this.versions.get(leg) ?? 0;
    this.versions.set(leg, ++version);
    let sessionId = this.sessionIds.get(leg);
    if (!sessionId) {
      sessionId = String(Math.floor(Math.random() * 2 ** 40));
      this.sessionIds.set(leg, sessionId);
    }
    const local: LocalMedia = {
      ...t,
      codecs,
      direction,
      setup: leg.setupFor(offering),
      mid: leg.kind === 'webrtc' ? leg.mid : null,
      midExtId: leg.kind === 'webrtc' ? leg.midExtId : null,
      // not announced: the consumer (and its SSRC) changes when the far party's SSRC does,
      // with no new offer; receivers take the one stream of the m-line (or its MID)
      ssrc: null,
      sessionId,
      version,
      // keep the m-line layout of the SDP we answer; offers carry audio alone
      audioIndex: offering ? 0 : shape.mediaIndex,
      others: offering ? [] : shape.mlines.map((m, index) => ({ index, ...m })).filter((m) => m.index !== shape.mediaIndex),
    };
    return writeLocal(local);
  }

  async stats(): Promise<{ caller: LegStats | null; callees: Record<number, LegStats> }> {
    const callees: Record<number, LegStats> = {};
    for (const [b, leg] of this.callees) callees[b] = await leg.stats();
    return { caller: this.caller ? await this.caller.stats() : null, callees };
  }

  /** Every leg of the call, for the periodic checks (SSRC changes, timeouts). */
  legs(): Leg[] {
    return [...(this.caller ? [this.caller] : []), ...this.callees.values()];
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const tap of [...this.taps]) tap.close();
    this.caller?.close();
    for (const leg of this.callees.values()) leg.close();
    this.callees.clear();
    this.caller = null;
    this.releaseRouter();
    for (const p of this.ports) this.allocator.release(p);
    this.ports.length = 0;
    this.removeAllListeners();
  }
}
