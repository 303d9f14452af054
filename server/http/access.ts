/**
 * Who may use the web server: the Host check (DNS rebinding) for every route, and the API's
 * door: the bearer token when one is configured (compared in constant time; in the query
 * string only for the event stream, which EventSource cannot give headers), else private
 * sources only (the embedded demo on a LAN). A refused caller gets the same 401 whatever the
 * cause, so the answer tells nothing about the gateway's configuration.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { isPrivateAddress } from '../net/address-class.js';
import { hostAllowed } from '../net/web-origin.js';

/** "::ffff:127.0.0.1" -> "127.0.0.1" */
export function peerAddress(req: Request): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** Equal strings in time that does not depend on where they differ (both hashed first: equal lengths). */
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function hostCheck(allowedHosts: readonly string[], log: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (hostAllowed(req.headers.host, allowedHosts)) return next();
    log.info({ source: peerAddress(req), host: req.headers.host ?? null, path: req.path }, 'http request refused: Host is not one of http.allowedHosts');
    res.status(421).json({ error: 'misdirected', message: 'this server does not answer to that host name' });
  };
}

/**
 * The API's door. `?token=` is honoured on `/events` only: elsewhere a token in a URL ends up
 * in proxy logs and browser history for nothing.
 */
export function apiAccess(apiToken: string | null, log: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const source = peerAddress(req);
    if (apiToken === null) {
      if (isPrivateAddress(source)) return next();
      log.info({ source, path: req.path }, 'api request refused: no http.apiToken is set, so the API answers private sources only');
      return unauthorized(res);
    }
    const auth = req.get('authorization') ?? '';
    let token: string | null = auth.startsWith('Bearer ') ? auth.slice(7) : null;
    if (token === null && req.path === '/events' && typeof req.query.token === 'string') token = req.query.token;
    if (token !== null && tokenMatches(token, apiToken)) return next();
    log.info({ source, path: req.path, token: token === null ? 'missing' : 'wrong' }, 'api request refused: bad or missing token');
    unauthorized(res);
  };
}

function unauthorized(res: Response): void {
  res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'unauthorized', message: 'an API token is required (Authorization: Bearer <token>)' });
}
