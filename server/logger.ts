/** One pino logger for the process; components take children carrying their context ({callId}...). */
import pino, { type Logger } from 'pino';
import type { Config } from './config/schema.js';

export function createLogger(cfg: Config['log'], destination?: pino.DestinationStream): Logger {
  const pretty = cfg.pretty === 'auto' ? Boolean(process.stdout.isTTY) : cfg.pretty;
  const options: pino.LoggerOptions = {
    level: cfg.level,
    base: { name: 'gateway' },
    // passwords never reach the logs, wherever they hide in an object we log
    redact: { paths: ['password', '*.password', 'users[*].password', 'authorization', '*.authorization'], censor: '[redacted]' },
  };
  if (destination) return pino(options, destination);
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,name' } } });
  }
  return pino(options);
}
