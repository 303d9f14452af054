/**
 * The one start-up line that says what the embedded defaults expose and to whom: an operator
 * reading the log knows the demo is fenced to the machine and its LAN, and what to set to
 * open it.
 */
import { usesDemoUsers, type Config } from '../config/schema.js';

export function guardNotice(config: Config): { message: string; fields: object } | null {
  const demo = usesDemoUsers(config);
  const untokened = config.http.apiToken === null;
  if (!demo && !untokened) return null;
  const fenced = [demo ? 'the demo users 1000-1004' : null, untokened ? 'the API (no http.apiToken)' : null].filter(Boolean).join(' and ');
  return {
    message: `${fenced} ${demo ? 'answer' : 'answers'} only this machine and private networks (loopback, RFC 1918, RFC 4193, link-local); set users and http.apiToken to serve others`,
    fields: { demoUsers: demo, apiToken: !untokened },
  };
}
