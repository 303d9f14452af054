/**
 * The composition root: builds every floor in dependency order (config -> registrar ->
 * transports -> transactions -> calls, media, taps -> proxy -> http) with no late binding:
 * each piece gets what it needs in its constructor, and what flows back up (arriving
 * messages, closed connections, requests for the proxy) goes by event subscription. Closed
 * in reverse order. See ARCHITECTURE.md for what each floor owns.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { CallMedia } from './calls/call-media.js';
import { CallRegistry } from './calls/call-registry.js';
import { LocalEndpoint } from './calls/local-endpoint.js';
import type { Config } from './config/schema.js';
import { EventBus } from './events/event-bus.js';
import { publishCalls, publishRegistrations } from './events/publishers.js';
import { createApp } from './http/app.js';
import { createMetrics } from './http/metrics.js';
import { tapsRouter } from './http/taps-routes.js';
import { MediaService } from './media/media-service.js';
import { webRoot } from './paths.js';
import { loadInstallSecret } from './config/install-secret.js';
import { CidrSet } from './net/address-class.js';
import { FlowTokens } from './proxy/flow-token.js';
import { KnownDialogs } from './proxy/known-dialogs.js';
import { Locality } from './proxy/locality.js';
import { ProxyCore } from './proxy/proxy-core.js';
import { Resolver } from './proxy/resolver.js';
import { sipTapGate } from './calls/sip-tap-gate.js';
import { gatewayDnsLookup, systemLookup } from './taps/tap-lookup.js';
import { TapUrlPolicy, type LookupFn } from './taps/url-policy.js';
import { TapPort } from './media/tap-port.js';
import { FileLocationStore } from './registrar/file-store.js';
import { MemoryLocationStore, type LocationStore } from './registrar/location-store.js';
import { Registrar } from './registrar/registrar.js';
import type { RoutingScript, Stage } from './routing/api.js';
import { script as defaultScript } from './routing/script.js';
import { use } from './routing/stages.js';
import { FloodGuard } from './security/flood-guard.js';
import { guardNotice } from './security/notice.js';
import { SipStack } from './sip/stack.js';
import { Timers } from './sip/transaction/timers.js';
import { TransactionLayer } from './sip/transaction/transaction-layer.js';
import { TransportLayer } from './sip/transport/transport-layer.js';
import { WsTransport } from './sip/transport/ws.js';
import { callTapStarter, checkTapDefaults } from './calls/call-taps.js';
import { TapService } from './taps/tap-service.js';
import { wsbridgeApp } from './calls/wsbridge-app.js';

export interface GatewayOptions {
  /** a routing script other than server/routing/script.ts (tests, embedding) */
  script?: RoutingScript;
  /** stages run before the script's own (auth, rate limits): drachtio's use() */
  stages?: Stage[];
  /** how tap URL hosts resolve (tests: stubs, so that no test asks a real resolver) */
  tapLookup?: { system: LookupFn | null; caller: LookupFn | null };
}

export interface Gateway {
  readonly config: Config;
  readonly log: Logger;
  readonly registrar: Registrar;
  readonly calls: CallRegistry;
  readonly transports: TransportLayer;
  readonly transactions: TransactionLayer;
  readonly stack: SipStack;
  readonly media: MediaService | null;
  readonly proxy: ProxyCore;
  /** the call controller: media offer/answer at the proxy's hooks, hangups from the middle */
  readonly callMedia: CallMedia;
  readonly bus: EventBus;
  readonly taps: TapService;
  /** Stops taking calls, waits up to graceMs for calls to end, hangs up the rest, closes. */
  drain(graceMs: number): Promise<void>;
  readonly local: LocalEndpoint;
  /** the ports actually bound (0 in the config picks free ones) */
  readonly ports: { udp: number | null; http: number; https: number | null };
  readonly advertise: string;
  /** per-source flood and brute-force bans */
  readonly guard: FloodGuard;
  close(): Promise<void>;
}

/** The gateway's run state: read by the proxy (503 to new calls while draining) and by /ready. */
interface RunState {
  listening: boolean;
  draining: boolean;
}

export async function startGateway(config: Config, log: Logger, opts: GatewayOptions = {}): Promise<Gateway> {
  const closers: (() => Promise<void> | void)[] = [];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        log.warn({ err: e }, 'error while closing');
      }
    }
  };
  const state: RunState = { listening: false, draining: false };
  try {
    const advertise = config.sip.advertise ?? detectAddress();
    // taps: their defaults are checked as a tap's options would be, before anything starts
    checkTapDefaults(config.taps.defaults);

    // registrar and its store
    const store = await openStore(config);
    closers.push(() => store.close());
    const realm = config.sip.realm ?? config.sip.domains[0] ?? advertise;
    const registrar = new Registrar(store, { ...config.registrar, realm, domains: [...config.sip.domains, advertise] }, config.users);
    registrar.start();
    closers.push(() => registrar.stop());
    // flood and brute-force bans (pike + ipban): asked before parsing, told of auth failures
    const guard = new FloodGuard({ ...config.security, trustedPeers: config.sip.trustedPeers }, log.child({ component: 'security' }));
    guard.start();
    closers.push(() => guard.stop());
    logRegistrations(registrar, log, guard);

    // sip: transports -> transactions; the stack parses what the transports receive
    const timers = new Timers(config.sip.timers);
    const transports = new TransportLayer();
    transports.on('transportError', (err, where) => log.warn({ err, where }, 'transport error'));
    closers.push(() => transports.close());
    guard.on('banned', (b) => transports.closeFlowsFrom(b.address));
    const transactions = new TransactionLayer(timers, transports);
    closers.push(() => transactions.close());
    const stack = new SipStack(transactions, { forceRport: config.sip.forceRport }, log.child({ component: 'sip' }));
    // a banned source's messages are dropped before any parsing (pike's drop)
    transports.on('message', (buf, src) => {
      if (guard.admit(src.address)) stack.receive(buf, src);
    });

    let udpPort: number | null = null;
    if (config.sip.udp !== false) {
      const iface = await transports.listenUdp(config.sip.udp.address, config.sip.udp.port, advertise);
      udpPort = iface.port;
    }

    const calls = new CallRegistry();
    closers.push(() => calls.endAll('shutdown'));
    const media = await startMedia(config, advertise, log);
    if (media) closers.push(() => media.close());

    // where taps may connect (issue 10): taps.allowedUrls for SIP, the checked address pinned
    // (its entries were checked with the config)
    const tapPolicy = new TapUrlPolicy({
      allowedUrls: config.taps.allowedUrls,
      lookup: opts.tapLookup ? opts.tapLookup.system : systemLookup,
      callerLookup: opts.tapLookup ? opts.tapLookup.caller : gatewayDnsLookup(config.sip.dns),
    });
    // taps: call audio to WebSocket servers and back
    const taps = new TapService({ calls, media, log: log.child({ component: 'taps' }), defaults: config.taps.defaults, maxTaps: config.taps.maxTaps, threads: config.taps.threads, maxPerThread: config.taps.maxPerThread, maxLoad: config.taps.maxLoad, threadNice: config.taps.threadNice });
    closers.push(() => taps.close());

    // calls: the local endpoint (wsbridge) and the call controller at the proxy's hooks
    const local = new LocalEndpoint({ transactions, transports, calls, media, log: log.child({ component: 'local' }), apps: { wsbridge: wsbridgeApp(taps, tapPolicy) } });
    closers.push(() => local.close());
    const callMedia = new CallMedia({ calls, media, local, transactions, transports, startTap: callTapStarter(taps, tapPolicy), log: log.child({ component: 'proxy' }) });

    // events and metrics
    const bus = new EventBus();
    publishRegistrations(registrar, bus);
    publishCalls(calls, bus);
    taps.on('event', (e) => bus.publish(`tap.${e.name}`, { tapId: e.tapId, call: e.callId, dialect: e.dialect, body: e.body as unknown }));
    const metrics = createMetrics({ registrar, calls, media, stack, tapCount: () => taps.list().length, tapDeviation: () => taps.pool.deviation() });

    // http: the softphone, the API and SIP over WebSocket on one port
    const app = createApp({
      registrar,
      calls,
      media,
      hangup: (call, reason) => callMedia.hangup(call, reason),
      users: config.users,
      tapsOf: (id) => taps.forCall(id).map((t) => t.toJSON()),
      extraApi: [tapsRouter(taps, tapPolicy)],
      webRoot,
      apiToken: config.http.apiToken,
      log: log.child({ component: 'http' }),
      bus,
      metrics,
      ready: () => state.listening && !state.draining,
      allowedHosts: config.http.allowedHosts,
      events: { maxSubscribers: config.http.maxEventSubscribers, maxBuffered: config.http.eventMaxBuffered },
    });
    const h = config.http;
    const wsLog = log.child({ component: 'ws' });
    const wsOptions = {
      path: h.wsPath, pingInterval: h.wsPingInterval, maxMessageSize: 64 * 1024,
      allowedHosts: h.allowedHosts, allowedOrigins: h.allowedOrigins, maxConnections: h.wsMaxConnections, maxPerSource: h.wsMaxPerSource,
      idleTimeout: h.wsIdleTimeout, admitSource: (a: string) => !guard.isBanned(a), trusted: (a: string) => guard.isTrusted(a),
      onRefused: (source: string, why: string) => wsLog.info({ source, why }, 'sip websocket refused'),
    };
    // the WebSocket transports close before their HTTP servers (closers run in reverse):
    // server.close() waits for upgraded sockets, which closeAllConnections() leaves alone
    const attachWs = (kind: 'ws' | 'wss', server: http.Server | https.Server): void => {
      const ws = new WsTransport(kind, wsOptions, () => transports.nextFlowId(), transports.receive,
        (flow) => transports.flowOpened(flow), (flow) => transports.flowClosed(flow));
      // one upgrade handler per server: the SIP path, else 404 (nothing else upgrades)
      server.on('upgrade', (req, socket, head) => {
        if ((req.url ?? '').split('?')[0] === config.http.wsPath) ws.handleUpgrade(req, socket, head);
        else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
      closers.push(() => closeServer(server), () => ws.close());
    };
    const httpServer = http.createServer(app);
    attachWs('ws', httpServer);
    const httpPort = await listen(httpServer, config.http.port, config.http.address);
    transports.addInterface({ transport: 'ws', host: advertise, port: httpPort });

    let httpsPort: number | null = null;
    const tls = config.http.tls;
    if (tls.cert && tls.key) {
      const httpsServer = https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, app);
      attachWs('wss', httpsServer);
      httpsPort = await listen(httpsServer, tls.port, config.http.address);
      transports.addInterface({ transport: 'wss', host: advertise, port: httpsPort });
    }

    // proxy: once every interface is known (they are "myself"); it subscribes to the transactions
    const dialogs = new KnownDialogs({
      dialogTimeout: config.sip.dialogTimeout * 1000,
      earlyTimeout: timers.C,
      pendingTimeout: config.sip.timers.transactionTimeout,
      max: config.sip.maxDialogs,
    });
    closers.push(() => dialogs.close());
    const proxy = new ProxyCore({
      transactions,
      transports,
      locality: new Locality(config.sip.domains, transports.interfaces),
      resolver: new Resolver(config.sip.dns),
      registrar,
      script: use(opts.script ?? defaultScript, ...(opts.stages ?? [])),
      timers,
      log: log.child({ component: 'proxy' }),
      hooks: callMedia,
      draining: () => state.draining,
      tapGate: sipTapGate(tapPolicy),
      trustedPeers: new CidrSet(config.sip.trustedPeers),
      maxForwards: config.sip.maxForwards,
      maxBranches: config.sip.maxBranches,
      tokens: new FlowTokens(loadInstallSecret(config.security.secretFile)),
      dialogs,
    });
    closers.push(() => proxy.close());
    // a closed WebSocket takes its registrations, its branches and its calls with it
    transports.on('flowClosed', (flow) => {
      void registrar.connectionClosed(flow.id);
      proxy.flowClosed(flow.id);
      callMedia.flowClosed(flow.id);
    });
    state.listening = true;
    log.info({ udp: udpPort, http: httpPort, https: httpsPort, advertise, ws: `ws://${advertise}:${httpPort}${config.http.wsPath}`, users: config.users.length }, 'gateway listening');
    const notice = guardNotice(config);
    if (notice) log.warn(notice.fields, notice.message);

    /**
     * Graceful shutdown: new calls get 503, calls up may end by themselves within `graceMs`,
     * the rest are hung up (BYE both ways); registrations stay in the store for the next start.
     */
    const drain = async (graceMs: number): Promise<void> => {
      state.draining = true;
      const end = Date.now() + graceMs;
      while (calls.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      for (const call of calls.list()) callMedia.hangup(call, 'gateway shutting down');
      // let the BYEs leave before the sockets close
      if (calls.size > 0 || graceMs > 0) await new Promise((r) => setTimeout(r, 200));
      await close();
    };

    return {
      config,
      log,
      bus,
      taps,
      drain,
      registrar,
      calls,
      transports,
      transactions,
      stack,
      media,
      proxy,
      callMedia,
      local,
      ports: { udp: udpPort, http: httpPort, https: httpsPort },
      advertise,
      guard,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The media bridge (rtpengine's job on mediasoup workers), started; null when disabled. */
async function startMedia(config: Config, advertise: string, log: Logger): Promise<MediaService | null> {
  if (!config.media.enabled) return null;
  const m = config.media;
  const media = new MediaService({
    workers: m.workers || os.availableParallelism(),
    listenIp: m.listenAddress,
    announcedAddress: m.announcedAddress ?? advertise,
    minPort: m.minPort,
    maxPort: m.maxPort,
    timeout: m.timeout,
    latchTimeout: m.latchTimeout,
    latchPackets: m.latchPackets,
    checkInterval: m.checkInterval,
    teardownLinger: m.teardownLinger,
    routerIdleTimeout: m.routerIdleTimeout,
    workerLogLevel: m.workerLogLevel,
  }, log.child({ component: 'media' }));
  await media.start();
  // taps' transports (loopback, to their threads) keep out of the ports the legs take over
  TapPort.keepOutOf(m.minPort, m.maxPort);
  return media;
}

async function openStore(config: Config): Promise<LocationStore> {
  const s = config.registrar.store;
  switch (s.type) {
    case 'memory':
      return new MemoryLocationStore();
    case 'file':
      return FileLocationStore.open(path.resolve(s.path), { compactBytes: s.compactBytes });
    case 'redis': {
      const { RedisLocationStore } = await import('./registrar/redis-store.js');
      return RedisLocationStore.connect(s.url, s.prefix);
    }
  }
}

function logRegistrations(registrar: Registrar, log: Logger, guard: FloodGuard): void {
  const rlog = log.child({ component: 'registrar' });
  registrar.on('registered', (b) => rlog.info({ aor: b.aor, contact: b.contact, transport: b.received.transport, source: `${b.received.address}:${b.received.port}` }, 'registered'));
  registrar.on('unregistered', (b, why) => rlog.info({ aor: b.aor, contact: b.contact, reason: why }, 'unregistered'));
  // the guard writes the one "auth failed" line (fail2ban's) and counts it against the source
  // (REGISTER and the proxy's authentication both report here)
  registrar.on('authFailed', (f) => guard.authFailed({ address: f.address, port: portOf(f.source) }, f.username, `${f.method}: ${f.reason}`));
}

/** The port of "198.51.100.7:5060" or "[2001:db8::1]:5060". */
function portOf(source: string): number {
  return Number(source.slice(source.lastIndexOf(':') + 1));
}

/** The first non-internal IPv4 address: what phones on the LAN can reach. */
export function detectAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function listen(server: http.Server | https.Server, port: number, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: http.Server | https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
