/**
 * The install's secret: 32 random bytes kept in a file (made on first start, readable by the
 * gateway's user only), so that what it signs (flow tokens in Record-Route) stays valid across
 * restarts. Without a file, each start draws a new one.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './load.js';

const BYTES = 32;

export function loadInstallSecret(file: string | null): Buffer {
  if (file === null) return randomBytes(BYTES);
  const abs = path.resolve(file);
  try {
    const hex = fs.readFileSync(abs, 'utf8').trim();
    if (/^[0-9a-f]{64}$/i.test(hex)) return Buffer.from(hex, 'hex');
    throw new ConfigError(`security.secretFile ${abs} does not hold a secret (64 hex digits); remove it to have a new one made`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`security.secretFile ${abs} cannot be read: ${(e as Error).message}`);
    }
  }
  const secret = randomBytes(BYTES);
  try {
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    // 'wx': two gateways starting at once must not overwrite each other's secret
    fs.writeFileSync(abs, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadInstallSecret(file);
    throw new ConfigError(`security.secretFile ${abs} cannot be written: ${(e as Error).message}`);
  }
}
