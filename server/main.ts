/**
 * The command line: `node dist/server/main.js [--config FILE]` (or GATEWAY_CONFIG=FILE).
 * Loads the config, starts the gateway, stops it cleanly on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.js';
import { startGateway } from './gateway.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, allowPositionals: false });
  let config;
  try {
    config = loadConfig(values.config ?? null);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`gateway: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.log);
  // One bad message or a bug in one call must not take every other call down with it.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
  const gw = await startGateway(config, log);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      // a second signal: do not wait any longer
      void gw.close().then(() => process.exit(0));
      return;
    }
    stopping = true;
    log.info({ signal, grace: config.shutdown.grace, calls: gw.calls.size }, 'shutting down: no new calls; calls up may end within the grace');
    void gw.drain(config.shutdown.grace * 1000).then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`gateway: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`gateway: failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
