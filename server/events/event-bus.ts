/**
 * What happens in the gateway, as events a subscriber can follow (the API's event stream):
 * registrations, calls, taps. One shape for all: { id, type, time, data }.
 */
import { EventEmitter } from 'node:events';

export interface GatewayEvent {
  /** increasing: a subscriber that reconnects can ask for what it missed (Last-Event-ID) */
  id: number;
  /** e.g. registration.added, call.started, call.answered, call.ended, tap.connect */
  type: string;
  time: string;
  data: Record<string, unknown>;
}

export class EventBus extends EventEmitter<{ event: [GatewayEvent] }> {
  private seq = 0;
  /** the last events, for subscribers that reconnect */
  private readonly recent: GatewayEvent[] = [];

  constructor(private readonly keep = 500) {
    super();
    this.setMaxListeners(1000);
  }

  publish(type: string, data: Record<string, unknown>): GatewayEvent {
    const event: GatewayEvent = { id: ++this.seq, type, time: new Date().toISOString(), data };
    this.recent.push(event);
    if (this.recent.length > this.keep) this.recent.shift();
    this.emit('event', event);
    return event;
  }

  /** Events after `id` still remembered. */
  since(id: number): GatewayEvent[] {
    return this.recent.filter((e) => e.id > id);
  }
}
