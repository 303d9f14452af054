/**
 * The JSON API on registrations, calls and users (mounted under /api):
 *   GET    /api/registrations              every current binding
 *   GET    /api/registrations/:aor         one user's bindings
 *   DELETE /api/registrations/:aor         remove them (?contact=URI: just that one)
 *   GET    /api/calls                      live calls, with media per leg
 *   GET    /api/calls/:id                  one call
 *   DELETE /api/calls/:id                  hang it up (BYE both ways, or CANCEL if ringing)
 *   GET    /api/users                      the configured users (never their passwords)
 * Errors are {error, message} with a 4xx status.
 */
import express, { type Request, type Response } from 'express';
import type { CallRegistry } from '../calls/call-registry.js';
import type { Call } from '../calls/call.js';
import type { MediaService } from '../media/media-service.js';
import type { Binding } from '../registrar/binding.js';
import type { Registrar } from '../registrar/registrar.js';

export interface ApiDeps {
  registrar: Registrar;
  calls: CallRegistry;
  media: MediaService | null;
  /** ends a call from the gateway (BYE / CANCEL), as the proxy does it */
  hangup: (call: Call, reason: string) => void;
  users: { username: string; displayName?: string }[];
  /** the taps of a call (state and counters), when the taps service runs */
  tapsOf?: (callId: string) => object[];
}

export function bindingJson(b: Binding, now = Date.now()): object {
  return {
    aor: b.aor,
    contact: b.contact,
    expiresIn: Math.max(0, Math.round((b.expires - now) / 1000)),
    transport: b.received.transport,
    source: `${b.received.address}:${b.received.port}`,
    flow: b.received.flowId,
    instance: b.instance,
    userAgent: b.userAgent,
    registeredAt: new Date(b.registeredAt).toISOString(),
    webSocket: b.received.transport === 'ws' || b.received.transport === 'wss',
  };
}

function notFound(res: Response, what: string): void {
  res.status(404).json({ error: 'not_found', message: what });
}

export function apiRouter(d: ApiDeps): express.Router {
  const r = express.Router();

  r.get('/registrations', async (_req, res) => {
    const list = await d.registrar.store.list();
    res.json({ registrations: list.map((b) => bindingJson(b)) });
  });

  r.get('/registrations/:aor', async (req: Request<{ aor: string }>, res) => {
    if (!d.registrar.isUser(req.params.aor)) return notFound(res, `no user ${req.params.aor}`);
    const list = await d.registrar.store.get(req.params.aor);
    res.json({ registrations: list.map((b) => bindingJson(b)) });
  });

  r.delete('/registrations/:aor', async (req: Request<{ aor: string }>, res) => {
    const contact = typeof req.query.contact === 'string' ? req.query.contact : undefined;
    const removed = await d.registrar.remove(req.params.aor, contact);
    if (removed === 0) return notFound(res, `no registration for ${req.params.aor}${contact ? ` at ${contact}` : ''}`);
    res.json({ removed });
  });

  const callJson = async (call: Call): Promise<object> => {
    const media = d.media?.has(call.id) ? await d.media.stats(call.id).catch(() => null) : null;
    return { ...call.toJSON(), media, taps: d.tapsOf?.(call.id) ?? [] };
  };

  r.get('/calls', async (_req, res) => {
    res.json({ calls: await Promise.all(d.calls.list().map(callJson)) });
  });

  r.get('/calls/:id', async (req: Request<{ id: string }>, res) => {
    const call = d.calls.get(req.params.id);
    if (!call) return notFound(res, `no call ${req.params.id}`);
    res.json(await callJson(call));
  });

  r.delete('/calls/:id', (req: Request<{ id: string }>, res) => {
    const call = d.calls.get(req.params.id);
    if (!call) return notFound(res, `no call ${req.params.id}`);
    d.hangup(call, 'ended by the API');
    res.json({ id: call.id, state: call.state, reason: call.endReason });
  });

  r.get('/users', (_req, res) => {
    res.json({ users: d.users.map((u) => ({ username: u.username, ...(u.displayName ? { displayName: u.displayName } : {}) })) });
  });

  return r;
}
