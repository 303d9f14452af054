/**
 * A call the proxy carries: one INVITE dialog seen from the middle (caller leg, one or more
 * forked callee legs, the one that answered). Owns what lives as long as the call: its media
 * session and taps hang off it and close with it.
 */
import type { MediaFlags } from '../media/flags.js';
import type { Dialog } from '../sip/dialog.js';
import type { Destination } from '../sip/transport/types.js';

export type CallState = 'calling' | 'ringing' | 'early' | 'answered' | 'ended';

export interface Party {
  uri: string;
  display: string | null;
  transport: string;
  address: string;
  port: number;
}

export interface CalleeLeg {
  index: number;
  uri: string;
  dest: Destination;
  flags: string[];
  media: MediaFlags | null;
  /** last status this branch answered, 0 before any */
  status: number;
}

let counter = 0;

export class Call {
  readonly id = `c${Date.now().toString(36)}${(++counter).toString(36)}`;
  state: CallState = 'calling';
  toTag: string | null = null;
  /** To tags of the early dialogs (a provisional response per forked branch, RFC 3261 §12.1) */
  readonly earlyTags = new Set<string>();
  readonly legs: CalleeLeg[] = [];
  answeredLeg: number | null = null;
  /** both ends of the dialog, once answered */
  dialog: Dialog | null = null;
  /** a media session anchors this call's RTP */
  media = false;
  readonly createdAt = Date.now();
  answeredAt: number | null = null;
  endedAt: number | null = null;
  endReason: string | null = null;
  /** resources to release when the call ends (media session, taps): closed in reverse order */
  private readonly closers: (() => void)[] = [];

  constructor(
    readonly callId: string,
    readonly fromTag: string,
    readonly caller: Party,
    readonly callee: { uri: string },
    readonly callerFlags: string[],
  ) {}

  /** The tag of the answered dialog, or of one of its early dialogs before the answer. */
  isCalleeTag(tag: string): boolean {
    return tag === this.toTag || this.earlyTags.has(tag);
  }

  onEnd(close: () => void): void {
    this.closers.push(close);
  }

  /** Idempotent: the first reason wins, and everything the call owns is closed once. */
  end(reason: string): boolean {
    if (this.state === 'ended') return false;
    this.state = 'ended';
    this.endedAt = Date.now();
    this.endReason = reason;
    for (const close of this.closers.splice(0).reverse()) {
      try {
        close();
      } catch {
        // closing one resource must not keep the others open
      }
    }
    return true;
  }

  toJSON(): object {
    return {
      id: this.id,
      callId: this.callId,
      state: this.state,
      caller: this.caller,
      callerFlags: this.callerFlags,
      callee: this.callee,
      legs: this.legs,
      answeredLeg: this.answeredLeg,
      createdAt: new Date(this.createdAt).toISOString(),
      answeredAt: this.answeredAt ? new Date(this.answeredAt).toISOString() : null,
      endedAt: this.endedAt ? new Date(this.endedAt).toISOString() : null,
      endReason: this.endReason,
    };
  }
}
