/**
 * GET /api/events: the event bus as Server-Sent Events. `?types=call,registration` keeps
 * events whose type starts with one of these; Last-Event-ID (or ?since=) replays what was
 * missed while the subscriber reconnected. A comment line every 15 s keeps proxies from
 * closing an idle stream.
 */
import type { Request, Response } from 'express';
import type { EventBus, GatewayEvent } from '../events/event-bus.js';

export function eventsHandler(bus: EventBus) {
  return (req: Request, res: Response): void => {
    const types = typeof req.query.types === 'string' ? req.query.types.split(',').map((t) => t.trim()).filter(Boolean) : [];
    const wanted = (e: GatewayEvent): boolean => types.length === 0 || types.some((t) => e.type === t || e.type.startsWith(t + '.'));
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const send = (e: GatewayEvent): void => {
      if (wanted(e)) res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const last = Number(req.get('last-event-id') ?? req.query.since ?? NaN);
    if (Number.isFinite(last)) for (const e of bus.since(last)) send(e);
    bus.on('event', send);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    req.on('close', () => {
      clearInterval(keepAlive);
      bus.off('event', send);
    });
  };
}
