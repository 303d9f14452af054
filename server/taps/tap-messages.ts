/**
 * The messages between the main thread (tap.ts, tap-worker-pool.ts) and a tap worker thread
 * (tap-worker.ts). Only set-up, tear-down, control and events cross: audio never does (RTP
 * goes between mediasoup and the worker's UDP sockets, figures sit in shared memory).
 */
import type { LegCodecs } from '../media/codecs.js';
import type { CallInfo, Side } from './dialect.js';
import type { TapStartOptions } from './options.js';
import type { TapEvent } from './tap-pipeline.js';

/** main -> worker */
export type ToWorker =
  | { t: 'create'; id: string; call: CallInfo; options: TapStartOptions; stats: SharedArrayBuffer }
  /** the call's media is ready: bind a socket for mediasoup's transport at `media`; answer 'bound' */
  | { t: 'attach'; id: string; req: number; media: { ip: string; port: number; range: { min: number; max: number } }; sources: Record<Side, TapSource | null> }
  /** what a party sends changed (codec, or the consumer and so the SSRC) */
  | { t: 'source'; id: string; side: Side; source: TapSource | null }
  | { t: 'injected'; req: number; ssrc: number | null; error?: string }
  | { t: 'stop'; id: string; reason: string; metadata: string | null }
  | { t: 'pause'; id: string }
  | { t: 'resume'; id: string }
  | { t: 'text'; id: string; text: string }
  /** the tap's figures and the thread's (answer 'stats') */
  | { t: 'stats'; req: number };

/** What the worker needs to know about one party's stream. */
export interface TapSource {
  codecs: LegCodecs | null;
  /** SSRC of the packets mediasoup sends for this party (its consumer's) */
  ssrc: number | null;
}

/** worker -> main */
export type FromWorker =
  /** `tid`: the thread's id in the OS (its CPU figures in /proc), or null off Linux */
  | { t: 'ready'; tid: number | null }
  | { t: 'event'; e: TapEvent }
  | { t: 'bound'; req: number; port: number | null; error?: string }
  | { t: 'inject'; id: string; req: number; side: Side }
  | { t: 'end'; id: string; reason: string }
  /** `loop`: the thread's event-loop delay since the last stats, and its GC pauses in all (ms) */
  | { t: 'stats'; req: number; clock: import('./frame-clock.js').FrameClockStats; loop: { p99Ms: number; maxMs: number; gcMs: number }; media: MediaCounters };

/** A tap thread's media packet counters (udp-tap-port.ts counts them). */
export interface MediaCounters {
  /** datagrams read */
  received: number;
  /** from no transport of ours */
  strays: number;
  /** from a transport of ours with no party's SSRC (yet) */
  unknownSsrc: number;
  /** RTCP from mediasoup (ignored) */
  rtcp: number;
  /** sent to mediasoup */
  sent: number;
}
