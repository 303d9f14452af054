/**
 * A real gateway for a test: in this process, on 127.0.0.1 with ports picked by the kernel,
 * memory store unless asked otherwise, quiet unless TEST_LOG names a level.
 */
import pino from 'pino';
import { buildConfig } from '../../server/config/load.js';
import type { Config } from '../../server/config/schema.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../server/gateway.js';

export const TEST_USERS = [
  { username: 'alice', password: 'pw-alice' },
  { username: 'bob', password: 'pw-bob' },
  { username: 'carol', password: 'pw-carol' },
  { username: 'uas', password: 'pw-uas' },
  { username: 'uac', password: 'pw-uac' },
];

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> | T[K] : T[K] };

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
      ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

export function testConfig(over: DeepPartial<Config> = {}): Config {
  const base = {
    // loopback is trusted: tests load the gateway from it (SIPp at 50 calls/s is a trunk's
    // load, not an office's); the flood tests attack from a network namespace instead
    sip: { advertise: '127.0.0.1', udp: { address: '127.0.0.1', port: 0 }, trustedPeers: ['127.0.0.0/8', '::1'] },
    http: { address: '127.0.0.1', port: 0 },
    registrar: { store: { type: 'memory' } },
    media: { listenAddress: '127.0.0.1', workers: 1 },
    users: TEST_USERS,
    log: { level: process.env.TEST_LOG ?? 'silent', pretty: false },
  };
  return buildConfig(merge(base, over as Record<string, unknown>));
}

export async function startTestGateway(over: DeepPartial<Config> = {}, opts: GatewayOptions = {}): Promise<Gateway> {
  const config = testConfig(over);
  const log = pino({ level: config.log.level });
  return startGateway(config, log, opts);
}

/** Waits until `check` holds, polling; rejects with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A UDP port that was free a moment ago (for a peer that must be told its port up front). */
export async function freeUdpPort(): Promise<number> {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves once something (a SIPp we started) holds this UDP port: binding it then fails. */
export async function waitUntilBound(port: number, timeoutMs = 10_000): Promise<void> {
  const dgram = await import('node:dgram');
  await waitFor(`UDP port ${port} to be bound`, async () => {
    const s = dgram.createSocket('udp4');
    const taken = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(true));
      s.bind(port, '127.0.0.1', () => resolve(false));
    });
    await new Promise<void>((r) => { try { s.close(() => r()); } catch { r(); } });
    return taken;
  }, timeoutMs);
}
