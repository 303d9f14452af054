/**
 * Audio a tap server sends back, waiting to be played into the call 20 ms at a time.
 *
 * Whatever arrives (one 20 ms frame, or a whole file in one message) is queued as it came:
 * L16 bytes are kept as received (no copy, no conversion up front), compressed files are
 * decoded in the background a slice at a time and only a little ahead of playout. The
 * shared clock pulls one frame per tick: the queue reads the next samples, converts their
 * rate to the call's (one streaming converter per source rate, so consecutive chunks join
 * without clicks) and writes exactly one frame. So a 30 s file sent at once plays in 30 s,
 * every sample once, and the cost of a tick never depends on how much is queued.
 *
 * Memory is bounded: audio beyond `maxQueuedMs` (and compressed bytes beyond
 * `maxCodedBytes`) is refused and reported; the tap pauses reading its socket well before
 * (flow control, like wsbridge's). `clear()` empties everything at once (barge-in). Marks
 * sit between the audio items; one is "reached" when the audio queued before it has been
 * written to a frame, and the tap echoes it once that frame is sent.
 */
import { codedSource, type CodedSource, type CodedType, type PcmChunk } from './coded-audio.js';
import { RateConverter } from './rate-converter.js';

export interface PlayoutOptions {
  /** rate of the frames pulled (the call's codec rate) */
  rate: number;
  /** most audio held, in ms (default 10 min) */
  maxQueuedMs?: number;
  /** most compressed bytes held before decoding (default 32 MiB) */
  maxCodedBytes?: number;
  /** how far ahead of playout compressed audio is decoded, ms (default 2000) */
  decodeAheadMs?: number;
}

type Item =
  | { t: 'l16'; bytes: Uint8Array; off: number; rate: number; channels: number }
  | { t: 'pcm'; pcm: Int16Array; off: number; rate: number }
  | { t: 'coded'; type: CodedType; src: CodedSource; chunks: PcmChunk[]; offs: number; aheadMs: number; busy: boolean; done: boolean; cancelled: boolean; bytes: number; decoded: number }
  | { t: 'mark'; name: string };

export interface PlayoutEvents {
  /** a compressed item failed to decode (what decoded before still plays) */
  decodeError(type: CodedType, err: Error): void;
}

const MAX_IN = 2048;

export class PlayoutQueue {
  rate: number;
  readonly maxQueuedMs: number;
  readonly maxCodedBytes: number;
  private readonly decodeAheadMs: number;
  private readonly items: Item[] = [];
  private readonly converters = new Map<number, RateConverter>();
  /** converted samples not yet written to a frame (a conversion overshoots by a little) */
  private readonly stage = new Int16Array(16384);
  private stageHead = 0;
  private stageLen = 0;
  private readonly inScratch = new Int16Array(MAX_IN);
  private readonly outScratch = new Int16Array(16384);
  /** marks reached: [output sample position after which it fires, name] */
  private readonly pendingMarks: { at: number; name: string }[] = [];
  private readonly reached: string[] = [];
  /** samples written to frames so far (at `rate`) */
  samplesOut = 0;
  /** audio queued (not yet converted), ms */
  private queued = 0;
  private codedBytes = 0;
  /** samples (at `rate`) of server audio refused because the queue was full */
  droppedMs = 0;

  constructor(opts: PlayoutOptions, private readonly on: PlayoutEvents = { decodeError: () => {} }) {
    this.rate = opts.rate;
    this.maxQueuedMs = opts.maxQueuedMs ?? 600_000;
    this.maxCodedBytes = opts.maxCodedBytes ?? 32 * 1024 * 1024;
    this.decodeAheadMs = opts.decodeAheadMs ?? 2000;
  }

  /** Changes the output rate (before playout starts: what was converted ahead is dropped). */
  setRate(rate: number): void {
    if (rate === this.rate) return;
    this.rate = rate;
    this.converters.clear();
    this.stageLen = 0;
    this.stageHead = 0;
  }

  /** Audio waiting (not counting compressed input not yet decoded), ms. */
  get queuedMs(): number {
    return this.queued + (this.stageLen * 1000) / this.rate;
  }

  /** Compressed bytes not yet decoded. */
  get pendingCodedBytes(): number {
    return this.codedBytes;
  }

  /** Nothing left to play (marks aside). */
  get empty(): boolean {
    return this.stageLen === 0 && this.items.every((i) => i.t === 'mark');
  }

  /** No items at all (audio or marks) and nothing reached but not yet taken. */
  get idle(): boolean {
    return this.items.length === 0 && this.stageLen === 0 && this.pendingMarks.length === 0 && this.reached.length === 0;
  }

  /**
   * L16 little-endian samples as received (`channels` interleaved, averaged to mono).
   * Returns false (nothing queued) when it would exceed maxQueuedMs.
   */
  enqueueL16(bytes: Uint8Array, rate: number, channels = 1): boolean {
    const frames = Math.floor(bytes.length / (2 * channels));
    if (frames === 0) return true;
    const ms = (frames * 1000) / rate;
    if (this.queuedMs + ms > this.maxQueuedMs) {
      this.droppedMs += ms;
      return false;
    }
    this.queued += ms;
    this.items.push({ t: 'l16', bytes: bytes.subarray(0, frames * 2 * channels), off: 0, rate, channels });
    return true;
  }

  /** Decoded samples (already int16). */
  enqueuePcm(pcm: Int16Array, rate: number): boolean {
    if (pcm.length === 0) return true;
    const ms = (pcm.length * 1000) / rate;
    if (this.queuedMs + ms > this.maxQueuedMs) {
      this.droppedMs += ms;
      return false;
    }
    this.queued += ms;
    this.items.push({ t: 'pcm', pcm, off: 0, rate });
    return true;
  }

  /** A compressed file (mp3, ogg), decoded in the background as playout approaches it. */
  enqueueCoded(type: CodedType, bytes: Uint8Array): boolean {
    if (this.codedBytes + bytes.length > this.maxCodedBytes || this.queuedMs >= this.maxQueuedMs) return false;
    this.codedBytes += bytes.length;
    const item: Item = { t: 'coded', type, src: codedSource(type, bytes), chunks: [], offs: 0, aheadMs: 0, busy: false, done: false, cancelled: false, bytes: bytes.length, decoded: 0 };
    this.items.push(item);
    void this.pump(item);
    return true;
  }

  mark(name: string): void {
    this.items.push({ t: 'mark', name });
  }

  /** Empties the queue (barge-in); returns the names of the marks that will never be reached. */
  clear(): string[] {
    const marks: string[] = [...this.pendingMarks.map((m) => m.name)];
    for (const it of this.items) {
      if (it.t === 'mark') marks.push(it.name);
      else if (it.t === 'coded') this.drop(it);
    }
    this.items.length = 0;
    this.pendingMarks.length = 0;
    this.stageLen = 0;
    this.stageHead = 0;
    this.queued = 0;
    this.codedBytes = 0;
    for (const c of this.converters.values()) c.reset();
    return marks;
  }

  /** Marks whose audio has been written to frames since the last call. */
  takeReached(): string[] {
    if (this.reached.length === 0) return EMPTY;
    return this.reached.splice(0);
  }

  /** Background decoding of one compressed item, up to decodeAheadMs ahead. */
  private async pump(item: Extract<Item, { t: 'coded' }>): Promise<void> {
    if (item.busy || item.done) return;
    item.busy = true;
    try {
      while (!item.cancelled && !item.done && item.aheadMs < this.decodeAheadMs) {
        const chunk = await item.src.next();
        if (item.cancelled) break;
        if (!chunk) {
          item.done = true;
          if (item.decoded === 0) throw new Error('no audio in it');
          break;
        }
        item.decoded += chunk.pcm.length;
        const ms = (chunk.pcm.length * 1000) / chunk.rate;
        if (this.queuedMs + ms > this.maxQueuedMs) {
          this.droppedMs += ms;
          continue;
        }
        item.chunks.push(chunk);
        item.aheadMs += ms;
        this.queued += ms;
        // yield between slices: decoding never holds the event loop for long
        await new Promise<void>((r) => setImmediate(r));
      }
    } catch (e) {
      item.done = true;
      if (!item.cancelled) this.on.decodeError(item.type, e as Error);
    } finally {
      item.busy = false;
      if (item.done || item.cancelled) this.drop(item);
    }
  }

  private drop(item: Extract<Item, { t: 'coded' }>): void {
    if (item.bytes > 0) {
      this.codedBytes -= item.bytes;
      item.bytes = 0;
    }
    item.cancelled = item.cancelled || !item.done;
    item.src.free();
  }

  private converter(rate: number): RateConverter {
    let c = this.converters.get(rate);
    if (!c) {
      c = new RateConverter(rate, this.rate, 'telephony');
      this.converters.set(rate, c);
    }
    return c;
  }

  /**
   * Write the next frame's audio into `out` (one frame: rate / 50 samples). Returns how
   * many samples came from the queue; the rest of `out` is left for the caller to fill
   * (silence or comfort noise).
   */
  pull(out: Int16Array): number {
    const n = out.length;
    let w = 0;
    if (this.stageLen > 0) {
      const take = Math.min(this.stageLen, n);
      out.set(this.stage.subarray(this.stageHead, this.stageHead + take), 0);
      this.stageHead += take;
      this.stageLen -= take;
      w = take;
    }
    while (w < n && this.items.length > 0) {
      const it = this.items[0]!;
      if (it.t === 'mark') {
        this.pendingMarks.push({ at: this.samplesOut + w, name: it.name });
        this.items.shift();
        continue;
      }
      if (it.t === 'coded') {
        if (it.chunks.length === 0) {
          if (it.done || it.cancelled) {
            this.items.shift();
            continue;
          }
          void this.pump(it);
          break; // still decoding: the frame is short, nothing is skipped
        }
        const chunk = it.chunks[0]!;
        const before = it.offs;
        w += this.convert(chunk.pcm, null, chunk.rate, it, out, w);
        const used = it.offs - before;
        it.aheadMs -= (used * 1000) / chunk.rate;
        if (it.offs >= chunk.pcm.length) {
          it.chunks.shift();
          it.offs = 0;
        }
        if (!it.done && !it.busy && it.aheadMs < this.decodeAheadMs / 2) void this.pump(it);
        continue;
      }
      if (it.t === 'pcm') {
        w += this.convert(it.pcm, null, it.rate, it, out, w);
        if (it.off >= it.pcm.length) this.items.shift();
        continue;
      }
      w += this.convert(null, it, it.rate, it, out, w);
      if (it.off >= it.bytes.length) this.items.shift();
    }
    // marks right after the last audio (nothing else queued) are reached with this frame
    while (this.stageLen === 0 && this.items.length > 0 && this.items[0]!.t === 'mark') {
      this.pendingMarks.push({ at: this.samplesOut + w, name: (this.items.shift() as { name: string }).name });
    }
    this.samplesOut += w;
    while (this.pendingMarks.length > 0 && this.pendingMarks[0]!.at <= this.samplesOut) this.reached.push(this.pendingMarks.shift()!.name);
    if (this.stageLen === 0) this.stageHead = 0;
    if (this.items.length === 0 && this.stageLen === 0) this.queued = 0;
    return w;
  }

  /**
   * Move samples of one item into out[w...]: straight when the rates match, else through
   * the converter for its rate (overshoot goes to the stage). Advances the item's offset;
   * returns the samples written.
   */
  private convert(pcm: Int16Array | null, l16: Extract<Item, { t: 'l16' }> | null, rate: number, pos: { off?: number; offs?: number }, out: Int16Array, w: number): number {
    const need = out.length - w;
    const key = pos.offs !== undefined ? 'offs' : 'off';
    const off = (pos as Record<string, number>)[key]!;
    const avail = pcm ? pcm.length - off : (l16!.bytes.length - off) / (2 * l16!.channels);
    const direct = rate === this.rate;
    const count = direct ? Math.min(need, avail) : Math.min(avail, MAX_IN, Math.ceil((need * rate) / this.rate) + 1);
    const dst = direct ? out : this.inScratch;
    const at = direct ? w : 0;
    if (pcm) {
      dst.set(pcm.subarray(off, off + count), at);
      (pos as Record<string, number>)[key] = off + count;
    } else {
      const b = l16!.bytes;
      const ch = l16!.channels;
      let p = off;
      if (ch === 1) {
        for (let i = 0; i < count; i++, p += 2) dst[at + i] = ((b[p]! | (b[p + 1]! << 8)) << 16) >> 16;
      } else {
        for (let i = 0; i < count; i++) {
          let s = 0;
          for (let c = 0; c < ch; c++, p += 2) s += ((b[p]! | (b[p + 1]! << 8)) << 16) >> 16;
          dst[at + i] = Math.round(s / ch);
        }
      }
      (pos as Record<string, number>)[key] = p;
    }
    this.queued -= (count * 1000) / rate;
    if (this.queued < 0) this.queued = 0;
    if (direct) return count;
    const produced = this.converter(rate).process(this.inScratch.subarray(0, count), this.outScratch, 0);
    const take = Math.min(produced, need);
    out.set(this.outScratch.subarray(0, take), w);
    if (produced > take) {
      const rest = produced - take;
      // stage is empty whenever we convert (it is drained first)
      this.stage.set(this.outScratch.subarray(take, produced), 0);
      this.stageHead = 0;
      this.stageLen = rest;
    }
    return take;
  }

  /** Frees decoders (the tap is done). */
  close(): void {
    this.clear();
  }
}

const EMPTY: string[] = [];
