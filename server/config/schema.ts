/**
 * The configuration: one object, every key with its default and a line saying what it does.
 * The embedded defaults are what `npm start` runs with when no file is given.
 * config/schema.json is generated from this (npm run build) for editors and operators.
 */
import { Type, type Static } from '@sinclair/typebox';

const Port = (def: number, description: string) => Type.Integer({ minimum: 0, maximum: 65535, default: def, description });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()], { default: null });

const Listen = (address: string, port: number, what: string) =>
  Type.Object({
    address: Type.String({ default: address, description: `address ${what} listens on` }),
    port: Port(port, `port ${what} listens on (0 picks a free one)`),
  }, { additionalProperties: false, default: {} });

const User = Type.Object({
  username: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._~!$&\'()*+,;=-]+$', description: 'SIP user part, e.g. 1000' }),
  password: Type.String({ minLength: 1, description: 'digest password (never logged)' }),
  displayName: Type.Optional(Type.String({ description: 'shown in the API and softphone' })),
}, { additionalProperties: false });

export const ConfigSchema = Type.Object({
  sip: Type.Object({
    domains: Type.Array(Type.String(), {
      default: [],
      description: 'domain names served as ours besides our own addresses (AORs are user@any-of-these)',
    }),
    realm: Nullable(Type.String({ description: 'digest realm; null: the domain the request is for (like OpenSIPS)' })),
    advertise: Nullable(Type.String({
      description: 'address written in Via, Record-Route and Contact; null: the first non-internal IPv4 address, else 127.0.0.1',
    })),
    udp: Type.Union([Listen('0.0.0.0', 5060, 'SIP over UDP'), Type.Literal(false)], { default: {}, description: 'SIP over UDP, or false for none' }),
    forceRport: Type.Boolean({
      default: true,
      description: 'answer every request at the address and port it came from (RFC 3581 rport for all, as OpenSIPS force_rport)',
    }),
    maxForwards: Type.Integer({ minimum: 1, maximum: 255, default: 70, description: 'Max-Forwards for requests that arrive without one' }),
    timers: Type.Object({
      t1: Type.Integer({ minimum: 10, default: 500, description: 'T1, ms (RFC 3261 §17)' }),
      t2: Type.Integer({ minimum: 10, default: 4000, description: 'T2, ms' }),
      t4: Type.Integer({ minimum: 10, default: 5000, description: 'T4, ms' }),
      transactionTimeout: Type.Integer({ minimum: 100, default: 32000, description: 'Timer B/F: ms without a final response before a branch fails with 408' }),
      inviteTimeout: Type.Integer({ minimum: 1000, default: 180000, description: 'Timer C: ms a forwarded INVITE may ring' }),
    }, { additionalProperties: false, default: {} }),
    dns: Type.Object({
      enabled: Type.Boolean({
        default: false,
        description: 'resolve host names of foreign Request-URIs and Routes; off: only IP literals and registered contacts are reachable',
      }),
      servers: Type.Array(Type.String(), { default: [], description: 'DNS servers to ask (e.g. ["127.0.0.1:5353"]); empty: the system resolver' }),
    }, { additionalProperties: false, default: {} }),
  }, { additionalProperties: false, default: {} }),

  http: Type.Object({
    address: Type.String({ default: '0.0.0.0', description: 'address the web server (softphone, API, SIP over WebSocket) listens on' }),
    port: Port(8080, 'HTTP port; also takes SIP over WebSocket at wsPath'),
    wsPath: Type.String({ default: '/sip', description: 'path of the SIP WebSocket (subprotocol "sip", RFC 7118)' }),
    wsPingInterval: Type.Integer({ minimum: 1, default: 30, description: 'seconds between WebSocket pings; a client that misses one is dropped' }),
    tls: Type.Object({
      port: Port(8443, 'HTTPS and WSS port, used when cert and key are set'),
      cert: Nullable(Type.String({ description: 'PEM certificate file; enables HTTPS/WSS' })),
      key: Nullable(Type.String({ description: 'PEM private key file' })),
    }, { additionalProperties: false, default: {} }),
    apiToken: Nullable(Type.String({ description: 'bearer token the /api routes require; null: no token (bind to a trusted address)' })),
  }, { additionalProperties: false, default: {} }),

  registrar: Type.Object({
    authenticate: Type.Boolean({
      default: true,
      description: 'digest-authenticate REGISTER; false: anyone may register any user name (trusted networks and benchmarks only)',
    }),
    minExpires: Type.Integer({ minimum: 0, default: 60, description: 'shorter registrations get 423 Interval Too Brief' }),
    maxExpires: Type.Integer({ minimum: 1, default: 7200, description: 'longer registrations are cut to this' }),
    defaultExpires: Type.Integer({ minimum: 1, default: 3600, description: 'when the REGISTER names none' }),
    nonceTtl: Type.Integer({ minimum: 5, default: 300, description: 'seconds a digest nonce stays valid' }),
    algorithms: Type.Array(Type.Union([Type.Literal('MD5'), Type.Literal('SHA-256')]), {
      default: ['MD5'], minItems: 1, description: 'digest algorithms offered in challenges, preferred first (RFC 8760)',
    }),
    store: Type.Object({
      type: Type.Union([Type.Literal('file'), Type.Literal('memory'), Type.Literal('redis')], {
        default: 'file', description: 'file: in memory with a journal that survives restarts; memory: lost on restart; redis: shared by several gateway nodes',
      }),
      path: Type.String({ default: './data/location.jsonl', description: 'file store: the journal' }),
      url: Type.String({ default: 'redis://127.0.0.1:6379', description: 'redis store: server URL' }),
      prefix: Type.String({ default: 'gw:loc:', description: 'redis store: key prefix' }),
    }, { additionalProperties: false, default: {}, description: 'where registrations are kept' }),
  }, { additionalProperties: false, default: {} }),

  users: Type.Array(User, {
    default: ['1000', '1001', '1002', '1003', '1004'].map((u) => ({ username: u, password: 'secret' + u })),
    description: 'accounts allowed to register; the embedded default has demo users 1000-1004 (password secret<user>)',
  }),

  media: Type.Object({
    enabled: Type.Boolean({ default: true, description: 'anchor RTP in the gateway (mediasoup); false: SDP passes through untouched' }),
    workers: Type.Integer({ minimum: 0, default: 0, description: 'mediasoup workers; 0: one per CPU core' }),
    listenAddress: Type.String({ default: '0.0.0.0', description: 'address the RTP sockets bind to' }),
    announcedAddress: Nullable(Type.String({ description: 'address written in SDP (c=, candidates); null: sip.advertise. Set the public address when behind NAT' })),
    minPort: Port(40000, 'lowest RTP port'),
    maxPort: Port(49999, 'highest RTP port'),
    timeout: Type.Integer({ minimum: 0, default: 60, description: 'seconds without RTP from a party that should send before the call ends (0: never; rtpengine --timeout)' }),
    latchTimeout: Type.Integer({ minimum: 0, default: 500, description: 'ms to wait for a phone\'s first RTP packet before sending to its SDP address anyway' }),
    latchPackets: Type.Integer({ minimum: 1, maximum: 50, default: 4, description: 'RTP packets in sequence (one SSRC) needed from a source a phone\'s SDP does not name (behind NAT) before its leg latches to it; a packet from the SDP\'s address latches at once (strict source: no RTP bleed)' }),
    checkInterval: Type.Integer({ minimum: 100, default: 1000, description: 'ms between checks of every call\'s media; every fifth reads each leg\'s counters (timeouts, phones that now send from elsewhere); new SSRCs are told by the workers' }),
    routerIdleTimeout: Type.Integer({ minimum: 0, default: 30, description: 'seconds a mediasoup router with no call left stays open for the next call of the same codecs (0: closed with its last call)' }),
    workerLogLevel: Type.Union([Type.Literal('debug'), Type.Literal('warn'), Type.Literal('error'), Type.Literal('none')], { default: 'error' }),
  }, { additionalProperties: false, default: {} }),

  taps: Type.Object({
    maxTaps: Type.Integer({ minimum: 0, default: 2000, description: 'most audio taps at once' }),
    defaults: Type.Record(Type.String(), Type.Unknown(), {
      default: {},
      description: 'options every tap starts with (heartbeatSec, reconnect, deflate, tls, bufferMs, playTo, suppressLog, ...); a tap\'s own options win',
    }),
  }, { additionalProperties: false, default: {} }),

  shutdown: Type.Object({
    grace: Type.Integer({ minimum: 0, default: 30, description: 'seconds calls may go on after SIGTERM before the gateway hangs them up' }),
  }, { additionalProperties: false, default: {} }),

  log: Type.Object({
    level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
    pretty: Type.Union([Type.Boolean(), Type.Literal('auto')], { default: 'auto', description: 'human-readable lines; auto: when stdout is a terminal' }),
  }, { additionalProperties: false, default: {} }),
}, { additionalProperties: false });

export type Config = Static<typeof ConfigSchema>;
export type UserConfig = Static<typeof User>;
