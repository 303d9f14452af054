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

/** The embedded demo accounts: answered only from private sources (the machine and its LAN). */
export const DEMO_USERS: readonly { username: string; password: string }[] = Object.freeze(
  ['1000', '1001', '1002', '1003', '1004'].map((u) => Object.freeze({ username: u, password: 'secret' + u })),
);

export const ConfigSchema = Type.Object({
  sip: Type.Object({
    domains: Type.Array(Type.String(), {
      default: [],
      description: 'domain names served as ours besides our own addresses (AORs are user@any-of-these)',
    }),
    realm: Nullable(Type.String({ description: 'digest realm of every challenge; null: the first of sip.domains, else the advertised address' })),
    advertise: Nullable(Type.String({
      description: 'address written in Via, Record-Route and Contact; null: the first non-internal IPv4 address, else 127.0.0.1',
    })),
    udp: Type.Union([Listen('0.0.0.0', 5060, 'SIP over UDP'), Type.Literal(false)], { default: {}, description: 'SIP over UDP, or false for none' }),
    forceRport: Type.Boolean({
      default: true,
      description: 'answer every request at the address and port it came from (RFC 3581 rport for all, as OpenSIPS force_rport)',
    }),
    maxForwards: Type.Integer({ minimum: 1, maximum: 255, default: 70, description: 'Max-Forwards for requests that arrive without one' }),
    maxBranches: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'most branches one request forks into (contacts of a user, a script\'s targets); the rest are not tried' }),
    dialogTimeout: Type.Integer({ minimum: 60, default: 43200, description: 'seconds a dialog set up through the gateway is known without any in-dialog request (each refreshes it); in-dialog requests of unknown dialogs get 481' }),
    maxDialogs: Type.Integer({ minimum: 100, default: 100000, description: 'most dialogs known at once; the least recently used is forgotten first' }),
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
    trustedPeers: Type.Array(Type.String(), {
      default: [],
      description: 'CIDR ranges or addresses of trunks and PBXs trusted without authentication (e.g. ["203.0.113.0/28"]); also exempt from flood and brute-force bans and from http.wsMaxPerSource (add a reverse proxy in front of the WebSocket here)',
    }),
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
    apiToken: Nullable(Type.String({
      description: 'bearer token the /api routes require (compared in constant time); null: no token, and then /api answers only private sources (loopback, RFC 1918, RFC 4193, link-local)',
    })),
    allowedHosts: Type.Array(Type.String(), {
      default: [],
      description: 'host names the web server answers to (Host header, against DNS rebinding); IP literals and localhost always pass; empty: no Host check',
    }),
    allowedOrigins: Type.Array(Type.String(), {
      default: [],
      description: 'origins (e.g. "https://phone.example.com") whose pages may open the SIP WebSocket, besides the page\'s own host and the names in allowedHosts; clients that send no Origin (phones) are always allowed',
    }),
    wsMaxConnections: Type.Integer({ minimum: 1, default: 10000, description: 'most SIP WebSocket connections at once; more get 503' }),
    wsMaxPerSource: Type.Integer({ minimum: 1, default: 200, description: 'most SIP WebSocket connections from one IP address (an office behind one NAT counts once); more get 503' }),
    wsIdleTimeout: Type.Integer({ minimum: 1, default: 30, description: 'seconds a new SIP WebSocket may stay open without sending a SIP request; then it is closed' }),
    maxEventSubscribers: Type.Integer({ minimum: 1, default: 64, description: 'most /api/events streams at once; more get 503' }),
    eventMaxBuffered: Type.Integer({ minimum: 1024, default: 1048576, description: 'bytes of events waiting for a slow /api/events reader before it is dropped' }),
  }, { additionalProperties: false, default: {} }),

  security: Type.Object({
    secretFile: Type.Union([Type.String(), Type.Null()], {
      default: './data/secret',
      description: 'file holding this install\'s secret (made on first start, mode 0600): it signs the flow tokens in Record-Route, so dialogs and registrations survive a restart; null: a new secret each start',
    }),
    floodWindow: Type.Integer({ minimum: 1, default: 2, description: 'seconds of the per-source SIP message count (Kamailio pike\'s sampling time)' }),
    floodMaxMessages: Type.Integer({ minimum: 1, default: 400, description: 'SIP messages (datagrams, WebSocket frames, keep-alives included) one source may send per floodWindow before it is banned' }),
    authFailureWindow: Type.Integer({ minimum: 1, default: 60, description: 'seconds over which a source\'s failed authentications are counted' }),
    maxAuthFailures: Type.Integer({ minimum: 1, default: 20, description: 'failed authentications (wrong password, unknown user) one source may have per authFailureWindow before it is banned' }),
    banTime: Type.Integer({ minimum: 1, default: 600, description: 'seconds a banned source is ignored (its messages dropped without a reply)' }),
    maxTrackedSources: Type.Integer({ minimum: 100, default: 50000, description: 'most source addresses counted at once (the oldest are forgotten first; bans are kept apart, as many)' }),
  }, { additionalProperties: false, default: {}, description: 'flood and brute-force protection (Kamailio pike + ipban); sip.trustedPeers are exempt' }),

  registrar: Type.Object({
    authenticate: Type.Boolean({
      default: true,
      description: 'digest-authenticate REGISTER; false: anyone may register any user name (trusted networks and benchmarks only)',
    }),
    minExpires: Type.Integer({ minimum: 0, default: 60, description: 'shorter registrations get 423 Interval Too Brief' }),
    maxExpires: Type.Integer({ minimum: 1, default: 7200, description: 'longer registrations are cut to this' }),
    defaultExpires: Type.Integer({ minimum: 1, default: 3600, description: 'when the REGISTER names none' }),
    nonceTtl: Type.Integer({
      minimum: 1, default: 30,
      description: 'seconds a digest nonce stays valid; a client using an older one is challenged again with stale=true (it retries without asking its user)',
    }),
    maxContacts: Type.Integer({
      minimum: 1, default: 10,
      description: 'bindings per user; a REGISTER adding more replaces the oldest (Asterisk remove_existing), one naming more gets 403',
    }),
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
      compactBytes: Type.Integer({
        minimum: 4096, default: 1048576,
        description: 'file store: the journal is rewritten (compacted) once it is over this size and over twice the live table',
      }),
    }, { additionalProperties: false, default: {}, description: 'where registrations are kept' }),
  }, { additionalProperties: false, default: {} }),

  users: Type.Array(User, {
    default: DEMO_USERS,
    description: 'accounts allowed to register; the embedded default has demo users 1000-1004 (password secret<user>)',
  }),

  media: Type.Object({
    enabled: Type.Boolean({ default: true, description: 'anchor RTP in the gateway (mediasoup); false: SDP passes through untouched' }),
    workers: Type.Integer({ minimum: 0, default: 0, description: 'mediasoup workers; 0: one per CPU core the process may run on (its CPU affinity)' }),
    listenAddress: Type.String({ default: '0.0.0.0', description: 'address the RTP sockets bind to' }),
    announcedAddress: Nullable(Type.String({ description: 'address written in SDP (c=, candidates); null: sip.advertise. Set the public address when behind NAT' })),
    minPort: Port(40000, 'lowest RTP port'),
    maxPort: Port(49999, 'highest RTP port'),
    timeout: Type.Integer({ minimum: 0, default: 60, description: 'seconds without RTP from a party that should send before the call ends (0: never; rtpengine --timeout)' }),
    latchTimeout: Type.Integer({ minimum: 0, default: 500, description: 'ms to wait for a phone\'s first RTP packet before sending to its SDP address anyway' }),
    latchPackets: Type.Integer({ minimum: 1, maximum: 50, default: 4, description: 'RTP packets in sequence (one SSRC) needed from a source a phone\'s SDP does not name (behind NAT) before its leg latches to it; a packet from the SDP\'s address latches at once (strict source: no RTP bleed)' }),
    checkInterval: Type.Integer({ minimum: 100, default: 1000, description: 'ms between checks of every call\'s media; every fifteenth reads each leg\'s counters (timeouts, byte totals; every fifth for phones with a prebuilt worker, which does not report phones that now send from elsewhere); new SSRCs are told by the workers' }),
    teardownLinger: Type.Integer({ minimum: 0, maximum: 30000, default: 1000, description: 'ms an answered call\'s media keeps relaying after the call ends (rtpengine\'s delete-delay): what a party sent just before or as its BYE left still reaches the other; ports are freed after it (0: at once)' }),
    routerIdleTimeout: Type.Integer({ minimum: 0, default: 30, description: 'seconds a mediasoup router with no call left stays open for the next call of the same codecs (0: closed with its last call)' }),
    workerLogLevel: Type.Union([Type.Literal('debug'), Type.Literal('warn'), Type.Literal('error'), Type.Literal('none')], { default: 'error' }),
  }, { additionalProperties: false, default: {} }),

  taps: Type.Object({
    maxTaps: Type.Integer({ minimum: 0, default: 2000, description: 'most audio taps at once (admission control: the next is refused with code 107 OVERLOADED)' }),
    threads: Type.Integer({ minimum: 0, default: 0, description: 'worker threads running the taps\' audio off the SIP event loop; 0: one per core' }),
    maxPerThread: Type.Integer({ minimum: 1, default: 1000, description: 'most taps one tap thread holds (admission control)' }),
    threadNice: Type.Integer({ minimum: 0, maximum: 19, default: 0, description: 'nice value the tap threads give themselves (Linux, per thread): above 0, the SIP thread and mediasoup come first when they share a core with the taps (SIP latency over tap timing)' }),
    maxLoad: Type.Number({ minimum: 0.05, maximum: 1, default: 0.85, description: 'a tap thread busier than this (event-loop utilisation over the last second, 0..1) takes no new tap: the CPU guard (LiveKit SIP\'s max_cpu_utilization idea)' }),
    allowedUrls: Type.Array(Type.String(), {
      default: [],
      maxItems: 1000,
      description: 'where taps and wsbridge asked for in SIP (X-Audio-Stream, P-wsbridge-websocket-uri, the routing script) may connect, for trusted callers only; empty: taps from SIP are off. '
        + 'Each entry is a ws:// or wss:// URL: scheme, host and port compared exactly (port omitted: 80/443), the path a prefix on segment boundaries, the query not compared; '
        + 'the host may be "*.example.com" (names under it) or "*" (any host), which reach public addresses only: loopback, private, link-local (cloud metadata) and other internal addresses need the exact host. '
        + 'The HTTP API (behind http.apiToken) may tap to any URL',
    }),
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

/** Whether the configuration still uses the embedded demo accounts (any of them). */
export function usesDemoUsers(config: Pick<Config, 'users'>): boolean {
  return config.users.some((u) => DEMO_USERS.some((d) => d.username === u.username && d.password === u.password));
}
