/**
 * Config from a file (YAML or JSON), then environment overrides, then the embedded defaults;
 * anything wrong stops start-up with the key and what was expected.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import YAML from 'yaml';
import { AllowedUrlError, parseAllowedUrl } from '../net/url-allow-list.js';
import { exposureProblems } from './exposure.js';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `GATEWAY_CONFIG` names the file when --config does not. */
export const CONFIG_ENV = 'GATEWAY_CONFIG';
/** `GW_SIP_ADVERTISE=203.0.113.7`, `GW_HTTP_PORT=8081`: one variable per key, path in capitals. */
export const ENV_PREFIX = 'GW_';

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  try {
    return path.extname(file) === '.json' ? JSON.parse(text) : (YAML.parse(text) ?? {});
  } catch (e) {
    throw new ConfigError(`config file ${file} is not valid ${path.extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
}

/** Validates a raw object (file contents, or what a test builds) and fills in the defaults. */
export function buildConfig(raw: unknown, env: NodeJS.ProcessEnv = {}): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('config must be an object of sections (sip, http, registrar, users, log...)');
  const value = structuredClone(raw) as Record<string, unknown>;
  applyEnv(value, env);
  const original = structuredClone(value);
  const withDefaults = Value.Default(ConfigSchema, value);
  const errors = [...Value.Errors(ConfigSchema, withDefaults)];
  if (errors.length > 0) {
    const lines = errors.slice(0, 5).flatMap((e) => explain(e.path, e.message, e.schema, at(original, e.path) ?? e.value));
    throw new ConfigError(`invalid configuration:\n  ${[...new Set(lines)].join('\n  ')}`);
  }
  const cfg = withDefaults as Config;
  checkConsistency(cfg);
  const exposed = exposureProblems(cfg, env);
  if (exposed.length > 0) throw new ConfigError(`refusing to start:\n  ${exposed.join('\n  ')}`);
  return cfg;
}

export function loadConfig(file: string | null, env: NodeJS.ProcessEnv = process.env): Config {
  const name = file ?? env[CONFIG_ENV] ?? null;
  return buildConfig(name ? readConfigFile(name) : {}, env);
}

/**
 * For a union (`udp: {...} | false`, the store kinds) the validator only says "expected union
 * value": explain against the object variant that fits the value best, so a typo is named.
 */
function explain(pointer: string, message: string, schema: TSchema, value: unknown): string[] {
  const variants = (schema.anyOf as TSchema[] | undefined)?.filter((v) => v[Kind] === 'Object') ?? [];
  if (variants.length > 0 && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    // the variant whose `type` matches, else the one with the fewest complaints
    const type = (value as { type?: unknown }).type;
    const ranked = variants
      .map((v) => ({ v, errors: [...Value.Errors(v, Value.Default(v, structuredClone(value)))] }))
      .map((r) => ({ ...r, score: r.errors.length + ((r.v.properties as Record<string, TSchema>).type?.const === type ? -100 : 0) }))
      .sort((a, b) => a.score - b.score);
    const best = ranked[0]!;
    if (best.errors.length > 0) {
      return best.errors.slice(0, 3).map((e) => describe(pointer + e.path, e.message, e.schema, e.value, best.v));
    }
  }
  const literals = (schema.anyOf as TSchema[] | undefined)?.filter((v) => v.const !== undefined) ?? [];
  if (literals.length > 0 && literals.length === (schema.anyOf as TSchema[]).length) {
    message = `expected one of ${literals.map((l) => JSON.stringify(l.const)).join(', ')}`;
  }
  return [describe(pointer, message, schema, value)];
}

function describe(pointer: string, message: string, schema: TSchema, value: unknown, parentHint?: TSchema): string {
  const key = pointer.replace(/^\//, '').replace(/\//g, '.') || '(top level)';
  if (message.includes('Unexpected property')) {
    const parentPath = pointer.split('/').slice(0, -1);
    const parent = parentHint ?? schemaAt(parentPath.slice(1));
    const known = parent && parent.properties ? Object.keys(parent.properties as object) : [];
    return `${key}: unknown key${known.length ? ` (expected one of: ${known.join(', ')})` : ''}`;
  }
  const expected = schema.description ? ` (${schema.description})` : '';
  return `${key}: ${message.charAt(0).toLowerCase() + message.slice(1)}, got ${JSON.stringify(value)}${expected}`;
}

function at(obj: unknown, pointer: string): unknown {
  let v = obj;
  for (const p of pointer.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

function schemaAt(parts: string[]): TSchema | null {
  let s: TSchema = ConfigSchema;
  for (const p of parts) {
    const props = (s as { properties?: Record<string, TSchema> }).properties;
    if (s[Kind] === 'Array' && /^\d+$/.test(p)) s = (s as unknown as { items: TSchema }).items;
    else if (props && props[p]) s = props[p]!;
    else return null;
  }
  return s;
}

function applyEnv(target: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const segments = name.slice(ENV_PREFIX.length).toLowerCase().split('_');
    const keys = resolveKeys(ConfigSchema, segments);
    if (!keys) throw new ConfigError(`environment variable ${name} names no configuration key`);
    let obj = target;
    for (const k of keys.slice(0, -1)) {
      if (typeof obj[k] !== 'object' || obj[k] === null) obj[k] = {};
      obj = obj[k] as Record<string, unknown>;
    }
    obj[keys[keys.length - 1]!] = parseEnvValue(raw);
  }
}

/** Matches env segments to schema keys case-insensitively (keys are camelCase, no underscores). */
function resolveKeys(schema: TSchema, segments: string[]): string[] | null {
  if (segments.length === 0) return [];
  const candidates: TSchema[] = schema.anyOf ? (schema.anyOf as TSchema[]) : [schema];
  for (const c of candidates) {
    const props = (c as { properties?: Record<string, TSchema> }).properties;
    if (!props) continue;
    for (const [key, sub] of Object.entries(props)) {
      if (key.toLowerCase() !== segments[0]) continue;
      const rest = resolveKeys(sub, segments.slice(1));
      if (rest) return [key, ...rest];
    }
  }
  return null;
}

function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function checkConsistency(cfg: Config): void {
  const r = cfg.registrar;
  if (r.minExpires > r.defaultExpires || r.defaultExpires > r.maxExpires) {
    throw new ConfigError(`registrar: expected minExpires <= defaultExpires <= maxExpires, got ${r.minExpires}, ${r.defaultExpires}, ${r.maxExpires}`);
  }
  if (cfg.media.minPort > cfg.media.maxPort - 3) {
    throw new ConfigError(`media: minPort must be below maxPort (at least two RTP/RTCP pairs), got ${cfg.media.minPort}-${cfg.media.maxPort}`);
  }
  const tls = cfg.http.tls;
  if ((tls.cert === null) !== (tls.key === null)) throw new ConfigError('http.tls: cert and key go together: set both or neither');
  for (const entry of cfg.taps.allowedUrls) {
    try {
      parseAllowedUrl(entry);
    } catch (e) {
      if (e instanceof AllowedUrlError) throw new ConfigError(`taps.allowedUrls: ${e.message}`);
      throw e;
    }
  }
  const seen = new Set<string>();
  for (const u of cfg.users) {
    if (seen.has(u.username)) throw new ConfigError(`users: username ${u.username} appears twice`);
    seen.add(u.username);
  }
}
