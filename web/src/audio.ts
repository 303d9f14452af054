/**
 * Everything the softphone plays or measures with WebAudio: the ring tone of an incoming call,
 * the ringback of an outgoing one, key clicks of the dial pad, and the level meters of the
 * microphone and the speaker. Generated on the fly: no audio files to ship.
 *
 * Browsers start an AudioContext suspended until the user interacts with the page: `unlock()`
 * is called from every click and key press, so a later incoming call can ring.
 */

/** Cadences (on, off in ms) and frequencies of the tones we play. */
const RING = { freqs: [440, 480], on: 2000, off: 4000, gain: 0.12 };
const RINGBACK = { freqs: [425], on: 1000, off: 4000, gain: 0.08 };

/** DTMF frequency pairs (ITU-T Q.23). */
const DTMF: Record<string, [number, number]> = {
  '1': [697, 1209], '2': [697, 1336], '3': [697, 1477],
  '4': [770, 1209], '5': [770, 1336], '6': [770, 1477],
  '7': [852, 1209], '8': [852, 1336], '9': [852, 1477],
  '*': [941, 1209], '0': [941, 1336], '#': [941, 1477],
};

export class AudioEngine {
  private ctx: AudioContext | null = null;
  private tone: { stop: () => void } | null = null;

  /** The shared context, created on first use. */
  context(): AudioContext {
    this.ctx ??= new AudioContext({ latencyHint: 'interactive' });
    return this.ctx;
  }

  /** Resume the context from a user gesture (autoplay policy). */
  unlock(): void {
    const ctx = this.context();
    if (ctx.state === 'suspended') void ctx.resume().catch(() => undefined);
  }

  /** Starts the incoming-call ring (or the outgoing ringback); replaces any tone playing. */
  startTone(kind: 'ring' | 'ringback'): void {
    this.stopTone();
    const spec = kind === 'ring' ? RING : RINGBACK;
    const ctx = this.context();
    const out = ctx.createGain();
    out.gain.value = 0;
    out.connect(ctx.destination);
    const oscillators = spec.freqs.map((f) => {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(out);
      o.start();
      return o;
    });
    // the cadence, scheduled a minute at a time on the audio clock
    let scheduledUntil = ctx.currentTime;
    const schedule = (): void => {
      const period = (spec.on + spec.off) / 1000;
      while (scheduledUntil < ctx.currentTime + 60) {
        const t = scheduledUntil;
        out.gain.setValueAtTime(0, t);
        out.gain.linearRampToValueAtTime(spec.gain, t + 0.02);
        out.gain.setValueAtTime(spec.gain, t + spec.on / 1000 - 0.02);
        out.gain.linearRampToValueAtTime(0, t + spec.on / 1000);
        scheduledUntil += period;
      }
    };
    schedule();
    const timer = setInterval(schedule, 30_000);
    this.tone = {
      stop: () => {
        clearInterval(timer);
        out.gain.cancelScheduledValues(ctx.currentTime);
        out.gain.setValueAtTime(0, ctx.currentTime);
        for (const o of oscillators) o.stop();
        out.disconnect();
      },
    };
  }

  stopTone(): void {
    this.tone?.stop();
    this.tone = null;
  }

  /** A short, quiet DTMF tone as feedback for a dial-pad key (what a desk phone does). */
  keyClick(key: string): void {
    const pair = DTMF[key];
    if (!pair || !this.ctx || this.ctx.state !== 'running') return;
    const ctx = this.ctx;
    const g = ctx.createGain();
    const t = ctx.currentTime;
    g.gain.setValueAtTime(0.05, t);
    g.gain.setValueAtTime(0.05, t + 0.1);
    g.gain.linearRampToValueAtTime(0, t + 0.12);
    g.connect(ctx.destination);
    for (const f of pair) {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(g);
      o.start(t);
      o.stop(t + 0.13);
    }
    setTimeout(() => g.disconnect(), 300);
  }

  /** A level meter on a stream's audio (nothing is played). */
  meter(stream: MediaStream): LevelMeter | null {
    if (stream.getAudioTracks().length === 0) return null;
    return new LevelMeter(this.context(), stream);
  }

  close(): void {
    this.stopTone();
    void this.ctx?.close().catch(() => undefined);
    this.ctx = null;
  }
}

/** The loudness of a stream, 0..1 on a 60 dB scale, from an AnalyserNode. */
export class LevelMeter {
  private readonly source: MediaStreamAudioSourceNode;
  private readonly analyser: AnalyserNode;
  private readonly buf: Float32Array<ArrayBuffer>;
  private smoothed = 0;

  constructor(ctx: AudioContext, stream: MediaStream) {
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.buf = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  /** The current level (0 silence .. 1 full scale), with a fast attack and a slow decay. */
  level(): number {
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const v of this.buf) sum += v * v;
    const rms = Math.sqrt(sum / this.buf.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const now = Math.min(1, Math.max(0, (db + 60) / 60));
    this.smoothed = now > this.smoothed ? now : this.smoothed * 0.85 + now * 0.15;
    return this.smoothed;
  }

  close(): void {
    this.source.disconnect();
    this.analyser.disconnect();
  }
}
