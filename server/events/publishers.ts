/** The gateway's components, turned into events on the bus (and nothing else). */
import type { CallRegistry } from '../calls/call-registry.js';
import type { Call } from '../calls/call.js';
import type { Binding } from '../registrar/binding.js';
import type { Registrar } from '../registrar/registrar.js';
import type { EventBus } from './event-bus.js';

function binding(b: Binding): Record<string, unknown> {
  return {
    aor: b.aor,
    contact: b.contact,
    transport: b.received.transport,
    source: `${b.received.address}:${b.received.port}`,
    expires: new Date(b.expires).toISOString(),
    userAgent: b.userAgent,
  };
}

function call(c: Call): Record<string, unknown> {
  return {
    id: c.id,
    callId: c.callId,
    state: c.state,
    caller: c.caller.uri,
    callee: c.callee.uri,
    ...(c.endReason !== null ? { reason: c.endReason } : {}),
  };
}

export function publishRegistrations(registrar: Registrar, bus: EventBus): void {
  registrar.on('registered', (b) => bus.publish('registration.added', binding(b)));
  registrar.on('refreshed', (b) => bus.publish('registration.refreshed', binding(b)));
  registrar.on('unregistered', (b, why) => bus.publish('registration.removed', { ...binding(b), reason: why }));
  registrar.on('authFailed', (f) => bus.publish('registration.failed', { ...f }));
}

export function publishCalls(calls: CallRegistry, bus: EventBus): void {
  const announced = new Map<string, string>();
  calls.on('started', (c) => {
    announced.set(c.id, c.state);
    bus.publish('call.started', call(c));
  });
  calls.on('updated', (c) => {
    if (announced.get(c.id) === c.state) return;
    announced.set(c.id, c.state);
    bus.publish(`call.${c.state}`, call(c));
  });
  calls.on('ended', (c) => {
    announced.delete(c.id);
    bus.publish('call.ended', call(c));
  });
}
