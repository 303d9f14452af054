/**
 * The taps' HTTP API (mounted under /api):
 *   POST /api/calls/:id/taps        start: {url, mix, rate, metadata?, dialect?, ...options}
 *                                   or mod_audio_stream's command {"command": "start <ws-url>
 *                                   <mono|mixed|stereo> <8k|16k> [metadata]"} (also stop,
 *                                   send_text, pause, resume, applied to the call's taps)
 *   GET  /api/calls/:id/taps        the call's taps
 *   GET  /api/taps                  every tap: state, counters
 *   GET  /api/taps/:tapId
 *   POST /api/taps/:tapId/send_text {text}
 *   POST /api/taps/:tapId/pause | resume
 *   POST /api/taps/:tapId/stop      {metadata?}
 * Errors: 400 bad input (a URL whose host does not resolve, TLS files named in the request:
 * those come from the config file only), 404 unknown call or tap, 409 wrong state, 503 no
 * room; always {error, message}.
 * The API is the operator's (behind http.apiToken): a tap may go to any URL, private
 * addresses included, but like every tap it connects to the address resolved and checked
 * when it starts (url-policy.ts); taps.allowedUrls binds taps asked for in SIP only.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { parseCommand, parseStartBody, TapInputError } from '../taps/options.js';
import { startChecked } from '../taps/checked-start.js';
import { systemLookup } from '../taps/tap-lookup.js';
import type { TapService } from '../taps/tap-service.js';
import { TapUrlPolicy, TapUrlRefused } from '../taps/url-policy.js';

const CODES: Record<number, string> = { 400: 'bad_request', 404: 'not_found', 409: 'conflict', 503: 'unavailable' };

function fail(res: Response, e: unknown): void {
  if (e instanceof TapInputError) {
    res.status(e.status).json({ error: CODES[e.status] ?? 'error', message: e.message, ...(e.code !== null ? { code: e.code } : {}) });
    return;
  }
  if (e instanceof TapUrlRefused) {
    res.status(400).json({ error: 'bad_request', message: e.message });
    return;
  }
  throw e;
}

function body(req: Request): Record<string, unknown> {
  return req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
}

function textOf(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** `policy`: the gateway's (default: one that resolves as the system does). */
export function tapsRouter(taps: TapService, policy: TapUrlPolicy = new TapUrlPolicy({ allowedUrls: [], lookup: systemLookup })): express.Router {
  const r = express.Router();

  r.post('/calls/:id/taps', async (req, res) => {
    try {
      const b = body(req);
      const callId = String(req.params.id);
      if (b.command !== undefined) {
        const cmd = parseCommand(b.command, b);
        if (cmd.action === 'start') {
          const tap = await startChecked(taps, policy, callId, cmd.options, 'api');
          return void res.status(201).json(tap.toJSON());
        }
        const list = taps.forCall(callId).filter((t) => t.state !== 'stopped');
        if (list.length === 0) throw new TapInputError(404, `no tap on call ${callId}`);
        for (const t of list) {
          if (cmd.action === 'stop') t.stop('stopped by request', cmd.metadata);
          else if (cmd.action === 'pause') t.pause();
          else if (cmd.action === 'resume') t.resume();
          else if (!t.sendText(cmd.text)) throw new TapInputError(409, `tap ${t.id} is not connected (${t.state})`);
        }
        return void res.json({ taps: list.map((t) => t.toJSON()) });
      }
      const tap = await startChecked(taps, policy, callId, parseStartBody(b), 'api');
      res.status(201).json(tap.toJSON());
    } catch (e) {
      fail(res, e);
    }
  });

  r.get('/calls/:id/taps', (req, res) => {
    res.json({ taps: taps.forCall(String(req.params.id)).map((t) => t.toJSON()) });
  });

  r.get('/taps', (_req, res) => {
    res.json({ taps: taps.list().map((t) => t.toJSON()) });
  });

  r.get('/taps/:tapId', (req, res) => {
    try {
      res.json(taps.require(String(req.params.tapId)).toJSON());
    } catch (e) {
      fail(res, e);
    }
  });

  r.post('/taps/:tapId/send_text', (req, res) => {
    try {
      const b = body(req);
      const text = textOf(b.text ?? b.metadata);
      if (text === null || text === '') throw new TapInputError(400, 'text is required');
      taps.sendText(String(req.params.tapId), text);
      res.json(taps.require(String(req.params.tapId)).toJSON());
    } catch (e) {
      fail(res, e);
    }
  });

  for (const action of ['pause', 'resume'] as const) {
    r.post(`/taps/:tapId/${action}`, (req, res) => {
      try {
        const id = String(req.params.tapId);
        taps[action](id);
        res.json(taps.require(id).toJSON());
      } catch (e) {
        fail(res, e);
      }
    });
  }

  r.post('/taps/:tapId/stop', (req, res) => {
    try {
      const tap = taps.require(String(req.params.tapId));
      tap.stop('stopped by request', textOf(body(req).metadata));
      res.json(tap.toJSON());
    } catch (e) {
      fail(res, e);
    }
  });

  // a JSON body that does not parse is the client's mistake, said in our shape
  r.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, next: NextFunction) => {
    if (err.type === 'entity.parse.failed') return void res.status(400).json({ error: 'bad_request', message: 'the body is not valid JSON' });
    next(err);
  });
  return r;
}
