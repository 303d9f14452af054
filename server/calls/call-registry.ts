/** The calls now up, found by Call-ID and either side's tag (in-dialog requests come both ways). */
import { EventEmitter } from 'node:events';
import { Call, type Party } from './call.js';

export interface CallEvents {
  started: [Call];
  updated: [Call];
  ended: [Call];
}

export class CallRegistry extends EventEmitter<CallEvents> {
  private readonly byCallId = new Map<string, Call[]>();
  private readonly byId = new Map<string, Call>();

  create(callId: string, fromTag: string, caller: Party, calleeUri: string, callerFlags: string[]): Call {
    const call = new Call(callId, fromTag, caller, { uri: calleeUri }, callerFlags);
    const list = this.byCallId.get(callId);
    if (list) list.push(call);
    else this.byCallId.set(callId, [call]);
    this.byId.set(call.id, call);
    this.emit('started', call);
    return call;
  }

  /**
   * The call of an in-dialog request, by its exact dialog (RFC 3261 §12: Call-ID and both
   * tags, from either side): one tag the caller's, the other a tag the callee answered with.
   * Never by Call-ID alone: a request with made-up tags must not reach (or end) a call.
   */
  find(callId: string, tagA: string | null, tagB: string | null): Call | undefined {
    const list = this.byCallId.get(callId);
    if (!list || !tagA || !tagB) return undefined;
    return list.find((c) => (c.fromTag === tagA && c.isCalleeTag(tagB)) || (c.fromTag === tagB && c.isCalleeTag(tagA)));
  }

  get(id: string): Call | undefined {
    return this.byId.get(id);
  }

  list(): Call[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  updated(call: Call): void {
    this.emit('updated', call);
  }

  end(call: Call, reason: string): void {
    if (!call.end(reason)) return;
    this.byId.delete(call.id);
    const list = this.byCallId.get(call.callId);
    if (list) {
      const rest = list.filter((c) => c !== call);
      if (rest.length === 0) this.byCallId.delete(call.callId);
      else this.byCallId.set(call.callId, rest);
    }
    this.emit('ended', call);
  }

  endAll(reason: string): void {
    for (const call of this.list()) this.end(call, reason);
  }
}
