/**
 * Media out of one tap: the server's audio played into the call. Its pipeline (tap-pipeline.ts)
 * makes one when the call's port arrives and calls step() in the second phase of every 20 ms
 * step, after the parties' frames of that step were decoded.
 *
 *   PlayoutQueue frame (server audio, paced; comfort noise or silence when short)
 *     -> the listener's codec rate [+ the other party, who no longer hears directly]
 *     -> encoder -> RtpPacketizer -> PlayPort.send, per injected side
 *
 * Injection starts with the first audio the server sends (start()) and lasts until close():
 * from then on the listener hears only our stream, so the other party is mixed in and its
 * RFC 4733 telephone-events are relayed, or the listener would lose them.
 */
import type { Logger } from 'pino';
import { RtpPacketizer } from '../audio/rtp.js';
import type { LegCodecs } from '../media/codecs.js';
import { otherSide } from '../sip/dialog.js';
import { SIDES, type Side } from './dialect.js';
import { TapErrorCode, type TapErrorCodeValue } from './errors.js';
import { FRAME_MS } from './frame-clock.js';
import type { PlayTo } from './options.js';
import type { PlayoutQueue } from './playout-queue.js';
import { RateConverter } from './rate-converter.js';
import { codecKind, createEncoder, type FrameEncoder, type NativeRate } from './rtp-codecs.js';
import type { TapStats } from './tap-stats.js';

/** What playing needs of the call's media port (udp-tap-port.ts). */
export interface PlayPort {
  /** the codecs a party speaks on this call, or null before the answer */
  codecs(side: Side): LegCodecs | null;
  /** make `side` hear what send(side) injects; resolves with the SSRC to send with */
  inject(side: Side): Promise<number>;
  /** an RTP packet for `side` (the buffer may be reused once this returns) */
  send(side: Side, packet: Buffer): void;
}

/** What the player needs of its pipeline. */
export interface CallPlayerDeps {
  port: PlayPort;
  /** the server's audio, paced; the player sets its rate once it knows the listeners' codecs */
  queue: PlayoutQueue;
  playTo: PlayTo;
  /** fill what the server did not send with faint noise rather than dead silence */
  comfortNoise: boolean;
  /**
   * `side`'s frame decoded in this step at its codec rate (20 ms of it: the length says the
   * rate), or null when it had none. Valid until the next step.
   */
  heard(side: Side): Int16Array | null;
  /** decode `side` from now on: it reaches the other party only through us */
  listen(side: Side): void;
  /** framesPlayed and the playing flag */
  stats: TapStats;
  log: Logger;
  error(code: TapErrorCodeValue, message: string): void;
  /** the queue's mark `name` was played (or reached with nothing before it) */
  marked(name: string): void;
}

/** idle until the first audio; `failed` stays (an encoder or the port said no) */
export type PlayState = 'idle' | 'starting' | 'playing' | 'failed';

/** Comfort noise: white noise at about -66 dBFS, one shared table. */
const NOISE = (() => {
  const t = new Int16Array(8000);
  let x = 0x12345678;
  for (let i = 0; i < t.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    t[i] = (x % 33) | 0;
  }
  return t;
})();

/** One injected side: its coder, RTP stream and the buffers reused every step. */
interface Injection {
  encoder: FrameEncoder;
  packetizer: RtpPacketizer;
  dtmfPt: number | null;
  frame: Int16Array;
  mixBuf: Int16Array;
  playConv: RateConverter | null;
  otherConv: RateConverter | null;
  rtp: Buffer;
  marker: boolean;
  /** telephone-event being relayed: its source timestamp -> ours */
  dtmf: { src: number; dst: number } | null;
}

export class CallPlayer {
  private st: PlayState = 'idle';
  private closed = false;
  /** the queue's rate: the listeners' codec rate, 16 kHz when two listeners differ */
  private rate: NativeRate | null = null;
  private readonly inject: Record<Side, Injection | null> = { caller: null, callee: null };
  private readonly frame = new Int16Array(320);
  private noiseAt = 0;

  constructor(private readonly deps: CallPlayerDeps) {}

  get state(): PlayState {
    return this.st;
  }

  /** The server sent audio: start injecting (once; tried again later if codecs are not known yet). */
  start(): void {
    if (this.st === 'idle' && !this.closed) void this.open();
  }

  /** Second phase of a step: what the call hears. */
  step(): void {
    const queue = this.deps.queue;
    if (this.st === 'playing') this.play();
    else if (this.st === 'idle' && !queue.empty) this.start();
    else if (this.st === 'idle' && !queue.idle && queue.empty) {
      // marks with no audio before them: reached at once
      queue.pull(this.frame.subarray(0, 160));
      for (const name of queue.takeReached()) this.deps.marked(name);
    }
  }

  /** A telephone-event from the party `to` no longer hears directly: pass it on. */
  relayDtmf(to: Side, payload: Uint8Array, timestamp: number, marker: boolean): void {
    const inj = this.inject[to];
    if (!inj || inj.dtmfPt === null || this.st !== 'playing') return;
    if (!inj.dtmf || inj.dtmf.src !== timestamp) inj.dtmf = { src: timestamp, dst: inj.packetizer.timestamp };
    const pkt = inj.packetizer.packetAt(payload, { timestamp: inj.dtmf.dst, marker, payloadType: inj.dtmfPt, out: inj.rtp });
    this.deps.port.send(to, pkt);
  }

  /** Releases the coders; nothing is played after. Idempotent. */
  close(): void {
    this.closed = true;
    for (const side of SIDES) {
      this.inject[side]?.encoder.destroy();
      this.inject[side] = null;
    }
  }

  private async open(): Promise<void> {
    const { port, playTo } = this.deps;
    const targets = SIDES.filter((s) => (playTo === 'both' || playTo === s) && port.codecs(s) !== null);
    if (targets.length === 0) return; // codecs not known yet: tried again with the next audio
    this.st = 'starting';
    try {
      for (const side of targets) {
        const codecs = port.codecs(side)!;
        const kind = codecKind(codecs.media);
        if (!kind) throw new Error(`no encoder for ${codecs.media.name}`);
        const encoder = createEncoder(kind);
        const ssrc = await port.inject(side);
        if (this.closed) {
          encoder.destroy();
          return;
        }
        this.inject[side] = {
          encoder,
          packetizer: new RtpPacketizer({ payloadType: codecs.media.pt, clockRate: codecs.media.clockRate, samplesPerPacket: encoder.tsPerFrame, ssrc }),
          dtmfPt: codecs.dtmf?.pt ?? null,
          frame: new Int16Array(encoder.rate / 50),
          mixBuf: new Int16Array(encoder.rate / 50),
          playConv: null,
          otherConv: null,
          rtp: Buffer.alloc(1600),
          marker: true,
          dtmf: null,
        };
      }
      const rates = new Set(targets.map((s) => this.inject[s]!.encoder.rate));
      this.rate = rates.size === 1 ? [...rates][0]! : 16000;
      this.deps.queue.setRate(this.rate);
      // from now on the other party is heard through us: decode it
      for (const side of targets) this.deps.listen(otherSide(side));
      this.st = 'playing';
      this.deps.stats.playing = true;
      this.deps.log.info({ targets, playRate: this.rate }, 'playing into the call');
    } catch (e) {
      this.st = 'failed';
      this.deps.error(TapErrorCode.MEDIA, `cannot play into the call: ${(e as Error).message}`);
    }
  }

  private play(): void {
    const { port, queue } = this.deps;
    const rate = this.rate;
    if (rate === null) return;
    const n = rate / 50;
    const frame = this.frame.subarray(0, n);
    const got = queue.pull(frame);
    if (got < n) {
      if (this.deps.comfortNoise) {
        for (let i = got; i < n; i++) {
          frame[i] = NOISE[this.noiseAt]!;
          if (++this.noiseAt === NOISE.length) this.noiseAt = 0;
        }
      } else frame.fill(0, got);
    }
    if (got > 0) this.deps.stats.counters.framesPlayed++;
    for (const side of SIDES) {
      const inj = this.inject[side];
      if (!inj) continue;
      const m = inj.frame.length;
      // server audio at the listener's codec rate
      if (rate === inj.encoder.rate) inj.frame.set(frame);
      else {
        inj.playConv ??= new RateConverter(rate, inj.encoder.rate, 'telephony');
        const w = inj.playConv.process(frame, inj.frame, 0);
        if (w < m) inj.frame.fill(0, w);
      }
      // plus the other party, who no longer reaches this side directly
      const src = this.deps.heard(otherSide(side));
      if (src) {
        const srcRate = src.length * (1000 / FRAME_MS);
        let add = src;
        if (srcRate !== inj.encoder.rate) {
          if (!inj.otherConv || inj.otherConv.inRate !== srcRate) inj.otherConv = new RateConverter(srcRate, inj.encoder.rate, 'telephony');
          const w = inj.otherConv.process(src, inj.mixBuf, 0);
          if (w < m) inj.mixBuf.fill(0, w);
          add = inj.mixBuf;
        }
        const f = inj.frame;
        for (let i = 0; i < m; i++) {
          const s = f[i]! + add[i]!;
          f[i] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
        }
      }
      const payload = inj.encoder.encode(inj.frame);
      const pkt = inj.packetizer.next(payload, { marker: inj.marker, out: inj.rtp });
      inj.marker = false;
      port.send(side, pkt);
    }
    for (const name of queue.takeReached()) this.deps.marked(name);
  }
}
