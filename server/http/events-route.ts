/**
 * GET /api/events: the event bus as Server-Sent Events. `?types=call,registration` keeps
 * events whose type starts with one of these; Last-Event-ID (or ?since=) replays what was
 * missed while the subscriber reconnected. A comment line every 15 s keeps proxies from
 * closing an idle stream.
 *
 * Bounded: at most `maxSubscribers` streams (more get 503), and a subscriber that lets more
 * than `maxBuffered` bytes wait in its socket (a reader that stopped reading) is dropped:
 * it reconnects with Last-Event-ID when it is back.
 */
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import type { EventBus, GatewayEvent } from '../events/event-bus.js';

export interface EventsLimits {
  maxSubscribers: number;
  maxBuffered: number;
}

const DEFAULT_LIMITS: EventsLimits = { maxSubscribers: 64, maxBuffered: 1024 * 1024 };

export function eventsHandler(bus: EventBus, limits: EventsLimits = DEFAULT_LIMITS, log?: Logger) {
  let subscribers = 0;
  return (req: Request, res: Response): void => {
    if (subscribers >= limits.maxSubscribers) {
      log?.warn({ subscribers, max: limits.maxSubscribers }, 'event stream refused: http.maxEventSubscribers reached');
      res.status(503).set('Retry-After', '10').json({ error: 'unavailable', message: `too many event subscribers (at most ${limits.maxSubscribers})` });
      return;
    }
    subscribers++;
    const types = typeof req.query.types === 'string' ? req.query.types.split(',').map((t) => t.trim()).filter(Boolean) : [];
    const wanted = (e: GatewayEvent): boolean => types.length === 0 || types.some((t) => e.type === t || e.type.startsWith(t + '.'));
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    let open = true;
    const write = (text: string): void => {
      if (!open) return;
      if (res.writableLength > limits.maxBuffered) {
        log?.warn({ buffered: res.writableLength }, 'event subscriber dropped: it stopped reading');
        open = false;
        res.destroy();
        return;
      }
      res.write(text);
    };
    write('retry: 2000\n\n');
    const send = (e: GatewayEvent): void => {
      if (wanted(e)) write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const last = Number(req.get('last-event-id') ?? req.query.since ?? NaN);
    if (Number.isFinite(last)) for (const e of bus.since(last)) send(e);
    bus.on('event', send);
    const keepAlive = setInterval(() => write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    let closed = false;
    const done = (): void => {
      if (closed) return;
      closed = true;
      open = false;
      subscribers--;
      clearInterval(keepAlive);
      bus.off('event', send);
    };
    req.on('close', done);
    res.on('close', done);
  };
}
