/** The express app: the softphone, the JSON API, health. */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { CallRegistry } from '../calls/call-registry.js';
import type { Binding } from '../registrar/binding.js';
import type { Registrar } from '../registrar/registrar.js';
import type { MediaService } from '../media/media-service.js';
import type { Call } from '../calls/call.js';

export interface AppDeps {
  registrar: Registrar;
  calls: CallRegistry;
  media: MediaService | null;
  webRoot: string;
  apiToken: string | null;
  log: Logger;
  /** for /readyz: every listener is up */
  ready: () => boolean;
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

export function createApp(d: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '256kb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', uptime: Math.round(process.uptime()) });
  });
  app.get('/readyz', (_req, res) => {
    const ok = d.ready();
    res.status(ok ? 200 : 503).json({ ready: ok });
  });

  const api = express.Router();
  api.use((req: Request, res: Response, next: NextFunction) => {
    if (d.apiToken === null) return next();
    const auth = req.get('authorization') ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : (req.query.token as string | undefined);
    if (token === d.apiToken) return next();
    res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'unauthorized', message: 'an API token is required (Authorization: Bearer <token>)' });
  });
  api.get('/registrations', async (_req, res) => {
    const list = await d.registrar.store.list();
    res.json({ registrations: list.map((b) => bindingJson(b)) });
  });
  const callJson = async (call: Call): Promise<object> => {
    const media = d.media?.has(call.id) ? await d.media.stats(call.id).catch(() => null) : null;
    return { ...call.toJSON(), media };
  };
  api.get('/calls', async (_req, res) => {
    res.json({ calls: await Promise.all(d.calls.list().map(callJson)) });
  });
  api.get('/calls/:id', async (req, res) => {
    const call = d.calls.get(req.params.id);
    if (!call) return void res.status(404).json({ error: 'not_found', message: `no call ${req.params.id}` });
    res.json(await callJson(call));
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

  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    d.log.warn({ err }, 'http request failed');
    res.status(500).json({ error: 'internal', message: err.message });
  });
  return app;
}
