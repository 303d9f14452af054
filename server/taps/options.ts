/**
 * What starting a tap takes, validated once for every way in (HTTP body, the
 * mod_audio_stream command line, the routing script, a SIP header). Pure: no I/O.
 */
import type { ReconnectOptions, TlsOptions } from './tap-socket.js';
import type { ResolvedAddress } from './url-policy.js';

export type Mix = 'mono' | 'mixed' | 'stereo';
export type Dialect = 'audio_stream' | 'twilio' | 'wsbridge';
export type PlayTo = 'caller' | 'callee' | 'both';
export type TapRate = 8000 | 16000;

/** What a tap is, derived from its options the same way on both threads (handle and pipeline). */
export interface TapShape {
  dialectName: Dialect;
  mix: Mix;
  /** Twilio Media Streams are 8 kHz µ-law whatever was asked */
  rate: TapRate;
  playTo: PlayTo;
  /** chunk length sent to the server; only mod_audio_stream's is configurable */
  bufferMs: number;
}

export function tapShape(options: TapStartOptions): TapShape {
  const dialectName = options.dialect ?? 'audio_stream';
  return {
    dialectName,
    mix: options.mix ?? 'mono',
    rate: dialectName === 'twilio' ? 8000 : (options.rate ?? 8000),
    playTo: options.playTo ?? 'caller',
    bufferMs: dialectName === 'audio_stream' ? (options.bufferMs ?? 20) : 20,
  };
}

export interface TapStartOptions {
  /** ws:// or wss:// */
  url: string;
  /** mono: the caller; mixed: both summed; stereo: caller left, callee right (default mono) */
  mix?: Mix;
  /** L16 sample rate sent to the server (default 8000; Twilio is always 8000 mu-law) */
  rate?: TapRate;
  /** text sent first on every connection (audio_stream); Twilio: customParameters when JSON */
  metadata?: string | null;
  /** the protocol spoken (default audio_stream, mod_audio_stream / mod_audio_fork style) */
  dialect?: Dialect;
  /** audio per binary message, ms, a multiple of 20 (default 20) */
  bufferMs?: number;
  /** who hears what the server sends back (default caller, as mod_audio_stream) */
  playTo?: PlayTo;
  /** extra HTTP headers on the WebSocket upgrade */
  headers?: Record<string, string>;
  /** ping every this many seconds; 0: no heartbeat (default 0) */
  heartbeatSec?: number;
  /** reconnect with backoff when the connection drops (default false) */
  reconnect?: boolean | Omit<ReconnectOptions, 'enabled'>;
  /** offer permessage-deflate (default false) */
  deflate?: boolean;
  tls?: TlsOptions;
  /** do not log what the server sends (events are still emitted; default false) */
  suppressLog?: boolean;
  /** comfort noise instead of silence when nothing plays (default: on for wsbridge only) */
  comfortNoise?: boolean;
  /** most audio queued for playback, ms (default 600 000) */
  maxQueuedMs?: number;
  /** outgoing frames are dropped while this much waits for the server, bytes (default 512 KiB) */
  maxBufferedBytes?: number;
  /** largest message accepted from the server, bytes (default 32 MiB) */
  maxMessageBytes?: number;
  /** opening handshake deadline, ms (default 10 000) */
  handshakeTimeoutMs?: number;
  /** flow control: stop reading the socket above this much queued audio, resume below half (default 60 000 ms) */
  pauseReadingAboveMs?: number;
  /** Twilio Media Streams dialect */
  twilio?: {
    /** inbound = the caller, outbound = the callee (default: inbound for mono/mixed, both for stereo) */
    tracks?: 'inbound' | 'outbound' | 'both';
    customParameters?: Record<string, string>;
    accountSid?: string;
  };
  /** wsbridge dialect: extra fields of the first JSON message */
  wsbridgeHeaders?: Record<string, unknown>;
  /**
   * The address the URL policy checked (url-policy.ts): the socket connects there and only
   * there, reconnections included. Set by the gateway, never taken from a request.
   */
  connectTo?: ResolvedAddress;
}

/** A request that cannot be served: an HTTP status and a message for the user. */
export class TapInputError extends Error {
  override readonly name = 'TapInputError';
  constructor(
    readonly status: number,
    message: string,
    /** the tap error code (errors.ts) when there is one, e.g. 107 OVERLOADED */
    readonly code: number | null = null,
  ) {
    super(message);
  }
}

const MIXES: readonly Mix[] = ['mono', 'mixed', 'stereo'];
const DIALECTS: readonly Dialect[] = ['audio_stream', 'twilio', 'wsbridge'];
const PLAY_TO: readonly PlayTo[] = ['caller', 'callee', 'both'];

export function parseUrl(v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '') throw new TapInputError(400, 'url is required (ws:// or wss://)');
  let u: URL;
  try {
    u = new URL(v.trim());
  } catch {
    throw new TapInputError(400, `bad URL: ${JSON.stringify(v)}`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TapInputError(400, `bad URL: ${JSON.stringify(v)} (ws:// or wss:// expected)`);
  if (!u.hostname) throw new TapInputError(400, `bad URL: ${JSON.stringify(v)} (no host)`);
  // ws refuses a fragment by throwing from its constructor: refuse it here, with the reason
  if (u.hash || v.includes('#')) throw new TapInputError(400, `bad URL: ${JSON.stringify(v)} (no fragment allowed)`);
  return u.toString();
}

export function parseMix(v: unknown): Mix {
  if (v === undefined || v === null || v === '') return 'mono';
  const s = String(v).toLowerCase();
  if (!(MIXES as readonly string[]).includes(s)) throw new TapInputError(400, `bad mix ${JSON.stringify(v)}: mono, mixed or stereo`);
  return s as Mix;
}

export function parseRate(v: unknown): TapRate {
  if (v === undefined || v === null || v === '') return 8000;
  const s = String(v).toLowerCase();
  if (s === '8k' || s === '8000') return 8000;
  if (s === '16k' || s === '16000') return 16000;
  throw new TapInputError(400, `bad rate ${JSON.stringify(v)}: 8k, 16k, 8000 or 16000`);
}

function parseBool(v: unknown, name: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1' || v === 1) return true;
  if (v === 'false' || v === '0' || v === 0) return false;
  throw new TapInputError(400, `${name} must be true or false`);
}

function parseNumber(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new TapInputError(400, `${name} must be a number from ${min} to ${max}`);
  return n;
}

function parseHeaders(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  let obj = v;
  if (typeof v === 'string') {
    try {
      obj = JSON.parse(v);
    } catch {
      throw new TapInputError(400, 'headers must be a JSON object of strings');
    }
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new TapInputError(400, 'headers must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj)) {
    // what an HTTP header may carry: a token name, a value without CR/LF
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) throw new TapInputError(400, `bad header name ${JSON.stringify(k)}`);
    if (typeof val !== 'string' && typeof val !== 'number') throw new TapInputError(400, `header ${k} must be a string`);
    const s = String(val);
    if (/[\r\n\0]/.test(s)) throw new TapInputError(400, `header ${k} has a line break`);
    out[k] = s;
  }
  return out;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The TLS keys that name server files: the config file's (taps.defaults.tls) only. */
export const TLS_FILE_KEYS = ['caFile', 'certFile', 'keyFile'] as const;

/**
 * Validates a start request (the JSON body of POST /api/calls/:id/taps, a script's options).
 * `fromConfig`: these are taps.defaults, the only place TLS files may be named; a request
 * naming one is refused before any file is touched (its message is the same whether the
 * file exists or not).
 */
export function parseStartBody(body: unknown, o: { fromConfig?: boolean } = {}): TapStartOptions {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TapInputError(400, 'a JSON object is expected');
  const b = body as Record<string, unknown>;
  const dialect = (b.dialect ?? 'audio_stream') as string;
  if (!(DIALECTS as readonly string[]).includes(dialect)) throw new TapInputError(400, `bad dialect ${JSON.stringify(b.dialect)}: audio_stream or twilio`);
  const playTo = b.playTo ?? 'caller';
  if (!(PLAY_TO as readonly string[]).includes(String(playTo))) throw new TapInputError(400, `bad playTo ${JSON.stringify(playTo)}: caller, callee or both`);
  const bufferMs = parseNumber(b.bufferMs ?? b.buffer_ms, 'bufferMs', 20, 2000);
  if (bufferMs !== undefined && bufferMs % 20 !== 0) throw new TapInputError(400, 'bufferMs must be a multiple of 20');
  let metadata: string | null = null;
  if (b.metadata !== undefined && b.metadata !== null) metadata = typeof b.metadata === 'string' ? b.metadata : JSON.stringify(b.metadata);
  let reconnect: TapStartOptions['reconnect'];
  if (typeof b.reconnect === 'object' && b.reconnect !== null) {
    const r = b.reconnect as Record<string, unknown>;
    reconnect = {
      minDelayMs: parseNumber(r.minDelayMs, 'reconnect.minDelayMs', 1, 600_000),
      maxDelayMs: parseNumber(r.maxDelayMs, 'reconnect.maxDelayMs', 1, 3_600_000),
      maxAttempts: parseNumber(r.maxAttempts, 'reconnect.maxAttempts', 0, 1_000_000),
    };
  } else reconnect = parseBool(b.reconnect, 'reconnect');
  let tlsOpts: TlsOptions | undefined;
  if (b.tls !== undefined && b.tls !== null) {
    if (typeof b.tls !== 'object') throw new TapInputError(400, 'tls must be an object');
    const t = b.tls as Record<string, unknown>;
    if (!o.fromConfig && TLS_FILE_KEYS.some((k) => t[k] !== undefined && t[k] !== null)) {
      throw new TapInputError(400, 'tls.caFile, tls.certFile and tls.keyFile are set in the config file only (taps.defaults.tls), never per request');
    }
    tlsOpts = o.fromConfig
      ? { caFile: str(t.caFile), certFile: str(t.certFile), keyFile: str(t.keyFile), checkHostname: parseBool(t.checkHostname, 'tls.checkHostname') }
      : { checkHostname: parseBool(t.checkHostname, 'tls.checkHostname') };
  }
  let twilio: TapStartOptions['twilio'];
  if (b.twilio !== undefined && b.twilio !== null) {
    if (typeof b.twilio !== 'object') throw new TapInputError(400, 'twilio must be an object');
    const t = b.twilio as Record<string, unknown>;
    if (t.tracks !== undefined && !['inbound', 'outbound', 'both'].includes(String(t.tracks))) throw new TapInputError(400, 'twilio.tracks: inbound, outbound or both');
    twilio = { tracks: t.tracks as 'inbound' | undefined, customParameters: parseHeaders(t.customParameters), accountSid: str(t.accountSid) };
  }
  return {
    url: parseUrl(b.url),
    mix: parseMix(b.mix),
    rate: parseRate(b.rate),
    metadata,
    dialect: dialect as Dialect,
    bufferMs,
    playTo: playTo as PlayTo,
    headers: parseHeaders(b.headers ?? b.extraHeaders),
    heartbeatSec: parseNumber(b.heartbeatSec ?? b.heartbeat, 'heartbeatSec', 0, 3600),
    reconnect,
    deflate: parseBool(b.deflate, 'deflate'),
    tls: tlsOpts,
    suppressLog: parseBool(b.suppressLog, 'suppressLog'),
    comfortNoise: parseBool(b.comfortNoise, 'comfortNoise'),
    maxQueuedMs: parseNumber(b.maxQueuedMs, 'maxQueuedMs', 1000, 3_600_000),
    maxBufferedBytes: parseNumber(b.maxBufferedBytes, 'maxBufferedBytes', 1024, 256 * 1024 * 1024),
    maxMessageBytes: parseNumber(b.maxMessageBytes, 'maxMessageBytes', 1024, 1024 * 1024 * 1024),
    handshakeTimeoutMs: parseNumber(b.handshakeTimeoutMs, 'handshakeTimeoutMs', 100, 600_000),
    pauseReadingAboveMs: parseNumber(b.pauseReadingAboveMs, 'pauseReadingAboveMs', 1000, 3_600_000),
    twilio,
  };
}

export type TapCommand =
  | { action: 'start'; options: TapStartOptions }
  | { action: 'stop'; metadata: string | null }
  | { action: 'send_text'; text: string }
  | { action: 'pause' }
  | { action: 'resume' };

/**
 * mod_audio_stream's API command (after `uuid_audio_stream <uuid>`):
 * `start <ws-url> <mono|mixed|stereo> <8k|16k|8000|16000> [metadata]`, `send_text <text>`,
 * `stop [metadata]`, `pause`, `resume`. Metadata is the rest of the line, spaces included.
 * `extra` (other fields of the request) adds options to a start.
 */
export function parseCommand(command: unknown, extra: Record<string, unknown> = {}): TapCommand {
  if (typeof command !== 'string' || command.trim() === '') throw new TapInputError(400, 'command must be a string such as "start <ws-url> <mix> <rate> [metadata]"');
  const line = command.trim();
  const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
  const verb = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (verb) {
    case 'start': {
      const parts = /^(\S+)\s+(\S+)\s+(\S+)(?:\s+([\s\S]*))?$/.exec(rest);
      if (!parts) throw new TapInputError(400, 'usage: start <ws-url> <mono|mixed|stereo> <8k|16k> [metadata]');
      const { command: _c, ...others } = extra;
      return { action: 'start', options: parseStartBody({ ...others, url: parts[1], mix: parts[2], rate: parts[3], metadata: parts[4] ?? null }) };
    }
    case 'stop':
      return { action: 'stop', metadata: rest === '' ? null : rest };
    case 'send_text':
      if (rest === '') throw new TapInputError(400, 'usage: send_text <text>');
      return { action: 'send_text', text: rest };
    case 'pause':
      return { action: 'pause' };
    case 'resume':
      return { action: 'resume' };
    default:
      throw new TapInputError(400, `unknown command ${JSON.stringify(verb)}: start, stop, send_text, pause or resume`);
  }
}

/**
 * A tap's options over the config's defaults: keys the request left undefined keep the
 * default (parseStartBody writes every key), and `tls` merges key by key, so that a request's
 * `checkHostname` does not drop the config's CA and client certificate.
 */
export function withDefaults(defaults: Partial<TapStartOptions> | undefined, options: TapStartOptions): TapStartOptions {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) out[k] = v;
  if (defaults?.tls && options.tls) {
    const tls: Record<string, unknown> = { ...defaults.tls };
    for (const [k, v] of Object.entries(options.tls)) if (v !== undefined) tls[k] = v;
    out.tls = tls;
  }
  return out as unknown as TapStartOptions;
}
