/**
 * The express app: the softphone (static), the JSON API and its event stream (behind the API
 * token when one is configured), Prometheus metrics, health and readiness.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EventBus } from '../events/event-bus.js';
import { apiAccess, hostCheck } from './access.js';
import { apiRouter, type ApiDeps } from './api-routes.js';
import { eventsHandler, type EventsLimits } from './events-route.js';

export { bindingJson } from './api-routes.js';

export interface AppDeps extends ApiDeps {
  webRoot: string;
  apiToken: string | null;
  log: Logger;
  bus: EventBus;
  metrics: Registry;
  /** more API routes (the taps'), mounted under /api behind the same token */
  extraApi?: express.Router[];
  /** for /readyz: every listener is up and we are not shutting down */
  ready: () => boolean;
  /** host names answered (http.allowedHosts); empty or absent: any */
  allowedHosts?: readonly string[];
  /** /api/events limits (http.maxEventSubscribers, http.eventMaxBuffered) */
  events?: EventsLimits;
}

export function createApp(d: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(hostCheck(d.allowedHosts ?? [], d.log));
  app.use(express.json({ limit: '256kb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', uptime: Math.round(process.uptime()) });
  });
  app.get('/readyz', (_req, res) => {
    const ok = d.ready();
    res.status(ok ? 200 : 503).json({ ready: ok });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', d.metrics.contentType).send(await d.metrics.metrics());
  });

  const api = express.Router();
  api.use(apiAccess(d.apiToken, d.log));
  api.get('/events', eventsHandler(d.bus, d.events, d.log));
  api.use(apiRouter(d));
  for (const r of d.extraApi ?? []) api.use(r);
  api.use((req: Request, res: Response) => {
    res.status(404).json({ error: 'not_found', message: `no route ${req.method} /api${req.path}` });
  });
  app.use('/api', api);

  // the page itself is always revalidated (it names the current bundle); the bundles are
  // named by their content hash and never change
  app.use(express.static(d.webRoot, {
    index: 'index.html',
    setHeaders: (res, file) => {
      res.setHeader('Cache-Control', /-[0-9a-zA-Z]{6,}\.(js|css)$/.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  }));

  app.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    // a JSON body that does not parse is the client's mistake
    if (err.type === 'entity.parse.failed' || err.status === 400) {
      res.status(400).json({ error: 'bad_request', message: `the body is not valid JSON: ${err.message}` });
      return;
    }
    d.log.warn({ err }, 'http request failed');
    res.status(500).json({ error: 'internal', message: err.message });
  });
  return app;
}
