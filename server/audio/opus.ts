/**
 * Opus (RFC 6716; RTP payload format RFC 7587) through the `opusscript` npm package: libopus
 * 1.4 compiled to WebAssembly, no native build.
 *
 * Why not opusscript's own JavaScript class: it views its wasm buffers with
 * `HEAPU16.subarray(bytePointer, ...)`, i.e. at twice the malloc'd address, so it writes
 * outside its allocations, and its views are never refreshed when the wasm memory grows:
 * with ~160 instances in one process every older instance throws "detached ArrayBuffer"
 * (reproduced with opusscript 0.1.1). We need hundreds of concurrent calls, so this file
 * drives the same compiled module (`build/opusscript_native_wasm.js`, its
 * `OpusScriptHandler`) with correctly sized allocations and fresh heap views per call.
 *
 * The handler's calling convention (from opusscript's src/opusscript_encoder.cpp):
 * - `_encode(inPtr, byteCount, outPtr, frameSize)`: the PCM is passed one byte per 16-bit
 *   cell (little-endian byte order) and compacted in place, reading up to 2 x byteCount
 *   cells; returns the packet length written at outPtr, or a negative libopus error.
 * - `_decode(inPtr, byteCount, outPtr)`: writes each decoded sample as two 16-bit cells
 *   (low byte, high byte); returns samples per channel, or a negative error.
 *
 * Decode at the rate you need (8000/16000/48000): libopus resamples internally, cheaper
 * than decoding at 48 kHz and resampling. Decode with `channels: 1` to get mono straight
 * from a stereo stream (libopus downmixes).
 */

import { createRequire } from 'node:module';

export type OpusRate = 8000 | 12000 | 16000 | 24000 | 48000;

interface NativeHandler {
  _encode(inPtr: number, bytes: number, outPtr: number, frameSize: number): number;
  _decode(inPtr: number, bytes: number, outPtr: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
  _decoder_ctl(ctl: number, arg: number): number;
}

interface NativeModule {
  OpusScriptHandler: {
    new (rate: number, channels: number, application: number): NativeHandler;
    destroy_handler(h: NativeHandler): void;
  };
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
  HEAPU16: Uint16Array;
}

let native: NativeModule | undefined;

/** The wasm module, instantiated once per process and shared by every coder. */
function nativeModule(): NativeModule {
  if (!native) {
    const require = createRequire(import.meta.url);
    const factory = require('opusscript/build/opusscript_native_wasm.js') as () => NativeModule;
    native = factory();
  }
  return native;
}

/** libopus application (OPUS_APPLICATION_*): voip favours speech, audio music. */
export const OpusApplication = { voip: 2048, audio: 2049, lowdelay: 2051 } as const;
export type OpusApplicationName = keyof typeof OpusApplication;

/** Encoder CTLs (opus_defines.h). */
const OPUS_SET_BITRATE = 4002;
const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const OPUS_SET_DTX = 4016;

const OPUS_ERRORS: Record<number, string> = {
  [-1]: 'bad argument',
  [-2]: 'buffer too small',
  [-3]: 'internal error',
  [-4]: 'invalid packet',
  [-5]: 'unimplemented',
  [-6]: 'invalid state',
  [-7]: 'memory allocation failed',
};

export class OpusError extends Error {
  override readonly name = 'OpusError';
  constructor(
    readonly op: string,
    readonly code: number,
  ) {
    super(`opus ${op} failed: ${OPUS_ERRORS[code] ?? code}`);
  }
}

/** 120 ms at 48 kHz: the longest frame libopus returns (and its decode buffer). */
const MAX_FRAME = 5760;
/** The longest frame opus_encode accepts: 60 ms at 48 kHz. */
const MAX_ENCODE_FRAME = 2880;
/** Largest packet the handler writes (3 x 1276, RFC 6716 §3.2.5 for 60 ms). */
const MAX_PACKET = 3828;

/** Native resources of one handler; freed by destroy() or, as a fallback, by GC. */
interface Native {
  handler: NativeHandler;
  pcmPtr: number;
  dataPtr: number;
  freed: boolean;
}

function release(n: Native): void {
  if (n.freed) return;
  n.freed = true;
  const m = nativeModule();
  m.OpusScriptHandler.destroy_handler(n.handler);
  m._free(n.pcmPtr);
  m._free(n.dataPtr);
}

const finalizer = new FinalizationRegistry<Native>(release);

function checkRate(rate: number): asserts rate is OpusRate {
  if (![8000, 12000, 16000, 24000, 48000].includes(rate)) throw new RangeError(`opus cannot run at ${rate} Hz`);
}

function allocate(owner: object, rate: number, channels: number, app: number, pcmBytes: number, dataBytes: number): Native {
  const m = nativeModule();
  const handler = new m.OpusScriptHandler(rate, channels, app);
  const n: Native = { handler, pcmPtr: m._malloc(pcmBytes), dataPtr: m._malloc(dataBytes), freed: false };
  if (!n.pcmPtr || !n.dataPtr) {
    release(n);
    throw new OpusError('allocation', -7);
  }
  finalizer.register(owner, n, n);
  return n;
}

export interface OpusDecoderOptions {
  /** Output rate (default 48000). */
  sampleRate?: OpusRate;
  /** Output channels, 1 or 2 (default 1: stereo streams are downmixed by libopus). */
  channels?: 1 | 2;
}

/** One decoder per received stream (libopus keeps prediction state across packets). */
export class OpusDecoder {
  readonly sampleRate: OpusRate;
  readonly channels: 1 | 2;
  /** Upper bound of decode()'s output length: 120 ms of interleaved samples. */
  readonly maxSamples: number;
  private readonly n: Native;

  constructor(options: OpusDecoderOptions = {}) {
    const rate = options.sampleRate ?? 48000;
    checkRate(rate);
    this.sampleRate = rate;
    this.channels = options.channels ?? 1;
    this.maxSamples = ((MAX_FRAME * rate) / 48000) * this.channels;
    // Two 16-bit cells per decoded sample (see the convention above); the handler decodes
    // up to MAX_FRAME samples per channel whatever the rate.
    this.n = allocate(this, rate, this.channels, OpusApplication.voip, MAX_FRAME * this.channels * 4, MAX_PACKET);
  }

  /**
   * Decode one packet into interleaved int16 (`frames x channels`: 960 for 20 ms mono at
   * 48 kHz, 320 at 16 kHz). With `out` (at least maxSamples long, or the exact frame size)
   * nothing is allocated; the returned array is the written part. Throws OpusError on a
   * corrupt packet.
   */
  decode(packet: Uint8Array, out?: Int16Array): Int16Array {
    const n = this.n;
    if (n.freed) throw new Error('OpusDecoder used after destroy()');
    // An empty packet would make libopus conceal a whole 120 ms (the handler's maximum
    // frame), not one packet's worth: loss concealment is not available through opusscript.
    if (packet.length === 0 || packet.length > MAX_PACKET) throw new OpusError('decode', -4);
    const m = nativeModule();
    m.HEAPU8.set(packet, n.dataPtr);
    const frames = n.handler._decode(n.dataPtr, packet.length, n.pcmPtr);
    if (frames < 0) throw new OpusError('decode', frames);
    const count = frames * this.channels;
    const dst = out === undefined ? new Int16Array(count) : out.length === count ? out : out.subarray(0, count);
    if (dst.length < count) throw new RangeError(`out holds ${dst.length} samples, need ${count}`);
    // Views are taken after the call: the wasm memory may have grown (and moved) during it.
    const cells = m.HEAPU16;
    const base = n.pcmPtr >> 1;
    for (let i = 0, c = base; i < count; i++, c += 2) dst[i] = ((cells[c + 1]! << 24) | (cells[c]! << 16)) >> 16;
    return dst;
  }

  /** Free the wasm memory now (else it is freed when the decoder is garbage collected). */
  destroy(): void {
    finalizer.unregister(this.n);
    release(this.n);
  }
}

export interface OpusEncoderOptions {
  /** Input rate (default 48000). */
  sampleRate?: OpusRate;
  /** Input channels (default 1). */
  channels?: 1 | 2;
  /** Default 'voip'. */
  application?: OpusApplicationName;
  /** Target bitrate in bit/s (libopus default when omitted: ~32 kbit/s mono). */
  bitrate?: number;
  /** 0-10 (default libopus' 10; lower is cheaper). */
  complexity?: number;
  /** In-band forward error correction, with the expected loss percentage. */
  fec?: { lossPercent: number };
  /** Discontinuous transmission: tiny packets in silence. */
  dtx?: boolean;
}

/** One encoder per sent stream. */
export class OpusEncoder {
  readonly sampleRate: OpusRate;
  readonly channels: 1 | 2;
  private readonly n: Native;

  constructor(options: OpusEncoderOptions = {}) {
    const rate = options.sampleRate ?? 48000;
    checkRate(rate);
    this.sampleRate = rate;
    this.channels = options.channels ?? 1;
    const app = OpusApplication[options.application ?? 'voip'];
    // One byte per 16-bit cell and the handler reads up to twice that many cells: 8 bytes
    // per input sample.
    this.n = allocate(this, rate, this.channels, app, MAX_ENCODE_FRAME * this.channels * 8, MAX_PACKET);
    if (options.bitrate !== undefined) this.ctl(OPUS_SET_BITRATE, options.bitrate);
    if (options.complexity !== undefined) this.ctl(OPUS_SET_COMPLEXITY, options.complexity);
    if (options.fec) {
      this.ctl(OPUS_SET_INBAND_FEC, 1);
      this.ctl(OPUS_SET_PACKET_LOSS_PERC, options.fec.lossPercent);
    }
    if (options.dtx) this.ctl(OPUS_SET_DTX, 1);
  }

  setBitrate(bitsPerSecond: number): void {
    this.ctl(OPUS_SET_BITRATE, bitsPerSecond);
  }

  private ctl(ctl: number, arg: number): void {
    if (this.n.freed) throw new Error('OpusEncoder used after destroy()');
    const r = this.n.handler._encoder_ctl(ctl, arg);
    if (r < 0) throw new OpusError(`ctl ${ctl}`, r);
  }

  /**
   * Encode one frame of interleaved int16: 2.5, 5, 10, 20, 40 or 60 ms (960 samples per
   * channel for 20 ms at 48 kHz). Returns the packet (a new Buffer, or the written part of
   * `out`, which should hold 1275+ bytes).
   */
  encode(pcm: Int16Array, out?: Uint8Array): Uint8Array {
    const n = this.n;
    if (n.freed) throw new Error('OpusEncoder used after destroy()');
    const frameSize = pcm.length / this.channels;
    if (!Number.isInteger(frameSize) || frameSize > (MAX_ENCODE_FRAME * this.sampleRate) / 48000) {
      throw new RangeError(`bad opus frame: ${pcm.length} samples`);
    }
    const m = nativeModule();
    const cells = m.HEAPU16;
    const base = n.pcmPtr >> 1;
    for (let i = 0, c = base; i < pcm.length; i++, c += 2) {
      const s = pcm[i]!;
      cells[c] = s & 0xff;
      cells[c + 1] = (s >> 8) & 0xff;
    }
    const len = n.handler._encode(n.pcmPtr, pcm.length * 2, n.dataPtr, frameSize);
    if (len < 0) throw new OpusError('encode', len);
    const packet = m.HEAPU8.subarray(n.dataPtr, n.dataPtr + len);
    if (out === undefined) return Buffer.from(packet);
    if (out.length < len) throw new RangeError(`out holds ${out.length} bytes, need ${len}`);
    out.set(packet);
    return out.subarray(0, len);
  }

  destroy(): void {
    finalizer.unregister(this.n);
    release(this.n);
  }
}
