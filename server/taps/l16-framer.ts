/**
 * Builds the binary messages of an L16 tap: each 20 ms of the call laid out as mono (the
 * caller), mixed (both summed, saturated) or stereo (caller left, callee right), little
 * endian, gathered into messages of `bufferMs`. One buffer, written in place; no allocation
 * per frame.
 */
import os from 'node:os';
import type { Mix } from './options.js';

const LITTLE = os.endianness() === 'LE';

export class L16Framer {
  readonly frameSamples: number;
  readonly channels: 1 | 2;
  readonly framesPerMessage: number;
  /** the message being filled; its bytes are what is sent */
  readonly message: Buffer;
  private readonly view: Int16Array;
  private frames = 0;

  constructor(
    readonly mix: Mix,
    readonly rate: number,
    bufferMs: number,
  ) {
    this.frameSamples = rate / 50;
    this.channels = mix === 'stereo' ? 2 : 1;
    this.framesPerMessage = Math.max(1, Math.round(bufferMs / 20));
    const samples = this.frameSamples * this.channels * this.framesPerMessage;
    const ab = new ArrayBuffer(samples * 2);
    this.message = Buffer.from(ab);
    this.view = new Int16Array(ab);
  }

  /** bytes of one message */
  get messageBytes(): number {
    return this.message.length;
  }

  /** Adds one 20 ms frame; returns true when the message is full (send `message`, then it restarts). */
  push(caller: Int16Array, callee: Int16Array): boolean {
    const n = this.frameSamples;
    const v = this.view;
    let o = this.frames * n * this.channels;
    switch (this.mix) {
      case 'mono':
        v.set(caller.subarray(0, n), o);
        break;
      case 'mixed':
        for (let i = 0; i < n; i++, o++) {
          const s = caller[i]! + callee[i]!;
          v[o] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
        }
        break;
      case 'stereo':
        for (let i = 0; i < n; i++, o += 2) {
          v[o] = caller[i]!;
          v[o + 1] = callee[i]!;
        }
        break;
    }
    this.frames++;
    if (this.frames < this.framesPerMessage) return false;
    this.frames = 0;
    if (!LITTLE) this.message.swap16();
    return true;
  }

  /** Drop a partly filled message (after a pause or a reconnection). */
  reset(): void {
    this.frames = 0;
  }
}
