/**
 * Media in of one tap: what each party of the call says, as its pipeline (tap-pipeline.ts)
 * hands it to the dialect and to the player (call-player.ts).
 *
 *   RTP of a party (the port's 'rtp') -> PartyInput: decode, jitter FIFO
 *   every 20 ms: pull() takes each party's frame at its codec rate (heard(), for the player's
 *   mix), then deliver() converts it to the tap's rate for the dialect
 *
 * A party is decoded only once someone asked for it (push() or listen()): a mono tap that
 * plays nothing leaves the other party's packets alone.
 */
import type { LegCodecs } from '../media/codecs.js';
import { SIDES, type Dialect, type Side } from './dialect.js';
import type { TapRate } from './options.js';
import { PartyInput } from './party-input.js';
import { RateConverter } from './rate-converter.js';

/** What capturing needs of its pipeline. */
export interface CallCaptureDeps {
  /** the tap's rate: what the dialect gets */
  rate: TapRate;
  /** the codecs a party speaks on this call, or null before the answer (the port's) */
  codecs(side: Side): LegCodecs | null;
  /** a DTMF digit `side` pressed (RFC 4733, ended) */
  digit(side: Side, digit: string, durationMs: number): void;
  /** a telephone-event packet `side` sent, as received (for relaying) */
  event(side: Side, payload: Uint8Array, timestamp: number, marker: boolean): void;
}

export class CallCapture {
  private readonly inputs: Record<Side, PartyInput | null> = { caller: null, callee: null };
  /** each party's frame of this step at its codec rate (a view of `native`), or null if it had none */
  private readonly frames: Record<Side, Int16Array | null> = { caller: null, callee: null };
  private readonly native: Record<Side, Int16Array> = { caller: new Int16Array(320), callee: new Int16Array(320) };
  private readonly toTap: Record<Side, RateConverter | null> = { caller: null, callee: null };
  private readonly tapBuf: Record<Side, Int16Array>;
  private readonly premixBuf = new Int16Array(320);

  constructor(private readonly deps: CallCaptureDeps) {
    this.tapBuf = { caller: new Int16Array(deps.rate / 50), callee: new Int16Array(deps.rate / 50) };
  }

  /** Decode `side` from now on (idempotent). */
  listen(side: Side): PartyInput {
    let inp = this.inputs[side];
    if (!inp) {
      inp = new PartyInput(() => this.deps.codecs(side), {
        digit: (digit, durationMs) => this.deps.digit(side, digit, durationMs),
        event: (payload, timestamp, marker) => this.deps.event(side, payload, timestamp, marker),
        rate: () => {
          this.toTap[side] = null;
        },
      });
      this.inputs[side] = inp;
    }
    return inp;
  }

  push(side: Side, packet: Buffer): void {
    this.listen(side).push(packet);
  }

  /** First thing of a step: each party's next 20 ms. */
  pull(): void {
    for (const side of SIDES) {
      const inp = this.inputs[side];
      if (inp) {
        const buf = this.native[side].subarray(0, inp.rate / 50);
        this.frames[side] = inp.pull(buf) ? buf : null;
      } else this.frames[side] = null;
    }
  }

  /** `side`'s frame of this step at its codec rate (the length says the rate), or null. */
  heard(side: Side): Int16Array | null {
    return this.frames[side];
  }

  /** This step's frames at the tap's rate, to the dialect. */
  deliver(dialect: Dialect): void {
    const n = this.deps.rate / 50;
    const ci = this.inputs.caller;
    const ce = this.inputs.callee;
    const a = this.frames.caller;
    const b = this.frames.callee;
    if (dialect.premix && ci && ce && ci.rate === ce.rate && b) {
      // mixed: sum at the codec rate, convert once
      const mix = this.premixBuf;
      const m = ci.rate / 50;
      for (let i = 0; i < m; i++) {
        const s = (a ? a[i]! : 0) + b[i]!;
        mix[i] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
      }
      this.convert('caller', ci, mix);
      this.tapBuf.callee.fill(0);
      dialect.onAudio(this.tapBuf.caller, this.tapBuf.callee, true, true);
      return;
    }
    for (const side of SIDES) {
      if (!dialect.needs[side]) continue;
      const inp = this.inputs[side];
      if (!inp || !this.frames[side]) this.tapBuf[side].fill(0, 0, n);
      else this.convert(side, inp, this.native[side]);
    }
    dialect.onAudio(this.tapBuf.caller, this.tapBuf.callee, a !== null, b !== null);
  }

  /** Digits still pressed are reported, the decoders released. */
  close(): void {
    for (const side of SIDES) {
      this.inputs[side]?.flushDtmf();
      this.inputs[side]?.destroy();
      this.inputs[side] = null;
      this.frames[side] = null;
    }
  }

  /** One party's native frame (or the premixed one, in the caller's slot) at the tap's rate. */
  private convert(side: Side, inp: PartyInput, src: Int16Array): void {
    const out = this.tapBuf[side];
    let conv = this.toTap[side];
    if (!conv || conv.inRate !== inp.rate) conv = this.toTap[side] = new RateConverter(inp.rate, this.deps.rate, 'telephony');
    const got = conv.process(src.subarray(0, inp.rate / 50), out, 0);
    if (got < out.length) out.fill(0, got);
  }
}
