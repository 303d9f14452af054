/**
 * A tap's live figures in shared memory: its worker thread writes them as they change, the
 * main thread reads them (GET /api/taps, tests, the bench) without a message per change.
 * One small SharedArrayBuffer per tap, laid out as named float64 slots; plain reads and
 * writes (one writer; a monitoring read may see a value one frame old, never a torn one on
 * the 64-bit platforms we run on).
 */

export type TapState = 'pending' | 'connecting' | 'connected' | 'paused' | 'reconnecting' | 'draining' | 'stopped';
const STATES: readonly TapState[] = ['pending', 'connecting', 'connected', 'paused', 'reconnecting', 'draining', 'stopped'];

export interface TapCounters {
  /** audio messages sent to the server (binary frames, Twilio media messages) */
  framesSent: number;
  /** audio messages received from the server (binary frames, streamAudio, media) */
  framesReceived: number;
  /** 20 ms frames of server audio played into the call */
  framesPlayed: number;
  /** audio messages not sent: the server was not reading (or not connected) */
  framesDropped: number;
  /** text messages each way */
  textSent: number;
  textReceived: number;
  /** server audio refused because the playout queue was full, ms */
  playbackDroppedMs: number;
  /** RTP packets received from the call, per party */
  rtpCaller: number;
  rtpCallee: number;
  /** events not emitted (a server flooding text messages) */
  eventsSuppressed: number;
  /** 20 ms steps skipped after a stall of the tap's thread (a gap, never a burst) */
  framesSkipped: number;
}

const COUNTERS: readonly (keyof TapCounters)[] = ['framesSent', 'framesReceived', 'framesPlayed', 'framesDropped', 'textSent', 'textReceived', 'playbackDroppedMs', 'rtpCaller', 'rtpCallee', 'eventsSuppressed', 'framesSkipped'];

/** Slots after the counters. */
const enum Slot {
  State = 0,
  Paused,
  Playing,
  QueuedMs,
  QueueEmpty,
  ReadingPaused,
  BufferedBytes,
  BytesSent,
  BytesReceived,
  Connects,
  ConnectedAt,
  /** RFC 3550-style smoothed |deviation| of this tap's frame steps from 20 ms, ms */
  Jitter,
  /** worst step deviation seen, ms */
  MaxDeviation,
  Count,
}

const BASE = Slot.Count;
export const TAP_STATS_BYTES = (BASE + COUNTERS.length) * 8;

/**
 * The counters as properties over the block: accessors on one shared prototype, so every
 * tap's view has the same shape (a counter bumped per packet stays a monomorphic access; an
 * object per tap with its own accessors made those sites megamorphic in a thread of hundreds).
 */
class CounterView {
  constructor(readonly a: Float64Array) {}

  /** A plain copy (what JSON of the view gives too). */
  toJSON(): TapCounters {
    const out = {} as TapCounters;
    COUNTERS.forEach((name, i) => {
      out[name] = this.a[BASE + i]!;
    });
    return out;
  }
}
COUNTERS.forEach((name, i) => {
  Object.defineProperty(CounterView.prototype, name, {
    enumerable: true,
    get(this: CounterView) {
      return this.a[BASE + i]!;
    },
    set(this: CounterView, v: number) {
      this.a[BASE + i] = v;
    },
  });
});

/** A view of one tap's block; both threads build one over the same buffer. */
export class TapStats {
  readonly counters: TapCounters;
  private readonly a: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(TAP_STATS_BYTES)) {
    this.a = new Float64Array(buffer);
    this.counters = new CounterView(this.a) as unknown as TapCounters;
  }

  get state(): TapState {
    return STATES[this.a[Slot.State]!]!;
  }
  set state(s: TapState) {
    this.a[Slot.State] = STATES.indexOf(s);
  }
  get paused(): boolean {
    return this.a[Slot.Paused] === 1;
  }
  set paused(v: boolean) {
    this.a[Slot.Paused] = v ? 1 : 0;
  }
  get playing(): boolean {
    return this.a[Slot.Playing] === 1;
  }
  set playing(v: boolean) {
    this.a[Slot.Playing] = v ? 1 : 0;
  }
  get queuedMs(): number {
    return this.a[Slot.QueuedMs]!;
  }
  get queueEmpty(): boolean {
    return this.a[Slot.QueueEmpty] === 1;
  }
  get readingPaused(): boolean {
    return this.a[Slot.ReadingPaused] === 1;
  }
  get bufferedBytes(): number {
    return this.a[Slot.BufferedBytes]!;
  }
  get bytesSent(): number {
    return this.a[Slot.BytesSent]!;
  }
  get bytesReceived(): number {
    return this.a[Slot.BytesReceived]!;
  }
  get connects(): number {
    return this.a[Slot.Connects]!;
  }
  get connectedAt(): number | null {
    return this.a[Slot.ConnectedAt] || null;
  }
  set connectedAt(v: number | null) {
    this.a[Slot.ConnectedAt] = v ?? 0;
  }
  get jitterMs(): number {
    return this.a[Slot.Jitter]!;
  }
  get maxDeviationMs(): number {
    return this.a[Slot.MaxDeviation]!;
  }

  /** The worker's view of its queue and socket, written once per step. */
  publish(queuedMs: number, queueEmpty: boolean, readingPaused: boolean, bufferedBytes: number, bytesSent: number, bytesReceived: number, connects: number): void {
    const a = this.a;
    a[Slot.QueuedMs] = queuedMs;
    a[Slot.QueueEmpty] = queueEmpty ? 1 : 0;
    a[Slot.ReadingPaused] = readingPaused ? 1 : 0;
    a[Slot.BufferedBytes] = bufferedBytes;
    a[Slot.BytesSent] = bytesSent;
    a[Slot.BytesReceived] = bytesReceived;
    a[Slot.Connects] = connects;
  }

  /** One step of the tap's frame clock, `deviationMs` away from 20 ms after the previous one. */
  step(deviationMs: number): void {
    const a = this.a;
    const d = deviationMs < 0 ? -deviationMs : deviationMs;
    a[Slot.Jitter] = a[Slot.Jitter]! + (d - a[Slot.Jitter]!) / 16;
    if (d > a[Slot.MaxDeviation]!) a[Slot.MaxDeviation] = d;
  }

  /** A plain copy of the counters (for logs and JSON). */
  snapshot(): TapCounters {
    return (this.counters as unknown as CounterView).toJSON();
  }
}
