/**
 * Identifiers we mint: Via branches (RFC 3261 §8.1.1.7: unique across space and time, with
 * the magic cookie), tags (§19.3) and Call-IDs. A random per-process prefix and a counter:
 * unique without a random draw per message.
 */
import crypto from 'node:crypto';
import { MAGIC_COOKIE } from './via.js';

const prefix = crypto.randomBytes(6).toString('base64url').replace(/[-_]/g, 'x');
let counter = 0;

function next(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return prefix + counter.toString(36);
}

export function newBranch(): string {
  return MAGIC_COOKIE + next();
}

export function newTag(): string {
  return next();
}

export function newCallId(host: string): string {
  return `${next()}@${host}`;
}
