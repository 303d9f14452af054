/**
 * What a tap dialect (one file each: audio-stream.ts, twilio.ts, wsbridge.ts) plugs into: the
 * tap gives it the call's audio each 20 ms and the server's messages; it speaks the protocol
 * and hands back audio to play, marks and barge-in. A dialect does no I/O itself.
 */
import type { Logger } from 'pino';
import type { CodedType } from './coded-audio.js';
import type { TapErrorCodeValue } from './errors.js';
import type { Mix, TapRate, TapStartOptions } from './options.js';

import type { Side } from '../sip/dialog.js';

export type { Side };

/** Both parties, in the order every per-side loop of the taps walks them. */
export const SIDES: readonly Side[] = ['caller', 'callee'];

export interface TapEventBodies {
  connect: { status: 'connected' };
  disconnect: { status: 'disconnected'; message: { code: number; reason: string } };
  error: { status: 'error'; message: { code: number; error: string; [k: string]: unknown } };
  /** any text the server sent (as text: it may not even be JSON) */
  json: string;
  play: { audioDataType: string; sampleRate: number; bytes: number; durationMs: number | null };
  mark: { name: string };
  dtmf: { side: Side; digit: string; durationMs: number };
  /** the tap ended */
  stop: { reason: string };
}

export type TapEventName = keyof TapEventBodies;

export interface CallInfo {
  /** the gateway's id of the call */
  id: string;
  /** the SIP Call-ID */
  callId: string;
  from: string;
  to: string;
}

/** What a dialect can ask of its tap. */
export interface DialectContext {
  readonly tapId: string;
  readonly call: CallInfo;
  readonly options: Readonly<TapStartOptions>;
  readonly log: Logger;
  sendText(text: string, force?: boolean): boolean;
  /** `buf` may be reused by the caller once this returns */
  sendBinary(buf: Buffer): boolean;
  /** an outgoing audio message was dropped (server not keeping up) */
  dropped(): void;
  /** an audio message (binary frame, media message) came from the server */
  received(): void;
  playL16(bytes: Uint8Array, rate: number, channels?: number): void;
  playPcm(pcm: Int16Array, rate: number): void;
  playCoded(type: CodedType, bytes: Uint8Array): void;
  mark(name: string): void;
  /** empty the playout queue now; returns the marks that were pending */
  clear(): string[];
  emit<K extends TapEventName>(name: K, body: TapEventBodies[K]): void;
  error(code: TapErrorCodeValue, message: string, details?: Record<string, unknown>): void;
}

export interface Dialect {
  /** L16 rate of the audio handed to onAudio */
  readonly rate: TapRate;
  /** which parties' audio onAudio needs */
  readonly needs: Readonly<Record<Side, boolean>>;
  /** mixed output: the tap may sum the parties before converting and pass the sum as `caller` (callee zeros) */
  readonly premix: boolean;
  /** after the server closes: play what is queued first (true), or end at once */
  readonly drainOnClose: boolean;
  /** the socket is open (again): the first messages */
  onOpen(): void;
  onText(text: string): void;
  onBinary(data: Buffer): void;
  /**
   * One 20 ms frame of each party at `rate` (zeros for a party that sent nothing; `had`
   * tells whether it did). Only while connected and not paused. Views valid for the call only.
   */
  onAudio(caller: Int16Array, callee: Int16Array, hadCaller: boolean, hadCallee: boolean): void;
  onDtmf(side: Side, digit: string, durationMs: number): void;
  /** the audio before this mark has been played */
  onMarkPlayed(name: string): void;
  /** the tap is being stopped by us (API, call end): last words before the close */
  onStop(metadata: string | null): void;
}

export interface DialectFactoryInput {
  ctx: DialectContext;
  mix: Mix;
  rate: TapRate;
  bufferMs: number;
}
