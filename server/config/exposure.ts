/**
 * Guarded defaults: what a configuration may expose, checked before anything listens.
 *   - the embedded demo (users 1000-1004) runs anywhere: its users and its untokened API
 *     answer only private sources (enforced by the registrar and the HTTP app);
 *   - a gateway with its own users whose web server listens beyond loopback needs an API
 *     token (we refuse to start rather than invent one: a token printed in a log is a leak);
 *   - published on a public address (docker compose's PUBLIC_IP): no demo users, a token.
 */
import { CidrError, CidrSet } from '../net/address-class.js';
import { usesDemoUsers, type Config } from './schema.js';

/** docker-compose.yml passes it through: the ports are published on this host address. */
export const PUBLIC_IP_ENV = 'PUBLIC_IP';

export function isLoopbackListen(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address);
}

/** The problems with a configuration's exposure, each naming the setting to change. */
export function exposureProblems(cfg: Config, env: NodeJS.ProcessEnv = {}): string[] {
  const problems: string[] = [];
  for (const [key, list] of [['sip.trustedPeers', cfg.sip.trustedPeers]] as const) {
    try {
      new CidrSet(list);
    } catch (e) {
      if (e instanceof CidrError) problems.push(`${key}: ${e.message}`);
      else throw e;
    }
  }
  const publicIp = (env[PUBLIC_IP_ENV] ?? '').trim();
  const token = cfg.http.apiToken;
  if (publicIp !== '') {
    if (usesDemoUsers(cfg)) {
      problems.push(`users: ${PUBLIC_IP_ENV}=${publicIp} publishes the gateway, and the demo users (1000-1004, password secret<user>) are still configured: list your own users in the config file (or GW_USERS)`);
    }
    if (token === null) {
      problems.push(`http.apiToken: ${PUBLIC_IP_ENV}=${publicIp} publishes the gateway without an API token: set http.apiToken (or GW_HTTP_APITOKEN)`);
    }
  } else if (token === null && !usesDemoUsers(cfg) && !isLoopbackListen(cfg.http.address)) {
    problems.push(`http.apiToken: the API would be served on ${cfg.http.address} without a token: set http.apiToken (or GW_HTTP_APITOKEN), or http.address: 127.0.0.1`);
  }
  return problems;
}
