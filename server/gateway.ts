/**
 * The composition root: config -> logger -> transports -> transactions -> routing -> media
 * -> taps -> http. Nothing else lives here: each piece is built, wired, and closed in
 * reverse order.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { CallRegistry } from './calls/call-registry.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { EventBus } from './events/event-bus.js';
import { publishCalls, publishRegistrations } from './events/publishers.js';
import { createApp } from './http/app.js';
import { createMetrics } from './http/metrics.js';
import { webRoot } from './paths.js';
import { MediaService } from './media/media-service.js';
import { tapsRouter } from './http/taps-routes.js';
import { parseCommand, parseStartBody } from './taps/options.js';
import { TapService } from './taps/tap-service.js';
import { wsbridgeApp } from './taps/wsbridge-app.js';
import { FileLocationStore } from './registrar/file-store.js';
import { MemoryLocationStore, type LocationStore } from './registrar/location-store.js';
import { Registrar } from './registrar/registrar.js';
import type { RoutingScript } from './routing/api.js';
import { script as defaultScript } from './routing/script.js';
import { LocalEndpoint } from './sip/proxy/local-endpoint.js';
import { Locality } from './sip/proxy/locality.js';
import { Proxy } from './sip/proxy/proxy.js';
import { Resolver } from './sip/proxy/resolver.js';
import { SipStack } from './sip/stack.js';
import { Timers } from './sip/transaction/timers.js';
import { TransactionLayer } from './sip/transaction/transaction-layer.js';
import { TransportLayer } from './sip/transport/transport-layer.js';
import { WsTransport } from './sip/transport/ws.js';

export interface GatewayOptions {
  /** a routing script other than server/routing/script.ts (tests, embedding) */
  script?: RoutingScript;
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
  readonly proxy: Proxy;
  readonly bus: EventBus;
  readonly taps: TapService;
  /** Stops taking calls, waits up to graceMs for calls to end, hangs up the rest, closes. */
  drain(graceMs: number): Promise<void>;
  readonly local: LocalEndpoint;
  /** the ports actually bound (0 in the config picks free ones) */
  readonly ports: { udp: number | null; http: number; https: number | null };
  readonly advertise: string;
  close(): Promise<void>;
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
  try {
    const advertise = config.sip.advertise ?? detectAddress();

    // registrar and its store
    const store = await openStore(config);
    closers.push(() => store.close());
    const registrar = new Registrar(store, { ...config.registrar, realm: config.sip.realm }, config.users);
    registrar.start();
    closers.push(() => registrar.stop());
    logRegistrations(registrar, log);

    // transports -> transactions -> proxy
    const timers = new Timers(config.sip.timers);
    let stack: SipStack | null = null;
    const transports = new TransportLayer((buf, src) => stack!.receive(buf, src), (err, where) => log.warn({ err, where }, 'transport error'));
    closers.push(() => transports.close());
    const transactions = new TransactionLayer(timers, transports);
    closers.push(() => transactions.close());
    stack = new SipStack(transactions, { forceRport: config.sip.forceRport }, log.child({ component: 'sip' }));

    let udpPort: number | null = null;
    if (config.sip.udp !== false) {
      const iface = await transports.listenUdp(config.sip.udp.address, config.sip.udp.port, advertise);
      udpPort = iface.port;
    }

    const calls = new CallRegistry();
    closers.push(() => calls.endAll('shutdown'));

    // media: rtpengine's job on mediasoup workers
    let media: MediaService | null = null;
    if (config.media.enabled) {
      const m = config.media;
      media = new MediaService({
        workers: m.workers || os.cpus().length,
        listenIp: m.listenAddress,
        announcedAddress: m.announcedAddress ?? advertise,
        minPort: m.minPort,
        maxPort: m.maxPort,
        timeout: m.timeout,
        latchTimeout: m.latchTimeout,
        latchPackets: m.latchPackets,
        checkInterval: m.checkInterval,
        routerIdleTimeout: m.routerIdleTimeout,
        workerLogLevel: m.workerLogLevel,
      }, log.child({ component: 'media' }));
      await media.start();
      const started = media;
      closers.push(() => started.close());
    }

    // http: the softphone, the API and SIP over WebSocket on one port
    let listening = false;
    // taps: call audio to WebSocket servers and back (their defaults checked as a tap would be)
    try {
      parseStartBody({ url: 'ws://127.0.0.1/', mix: 'mono', rate: '8k', ...config.taps.defaults });
    } catch (e) {
      throw new ConfigError(`invalid configuration:\n  taps.defaults: ${(e as Error).message}`);
    }
    const taps = new TapService({ calls, media, log: log.child({ component: 'taps' }), defaults: config.taps.defaults, maxTaps: config.taps.maxTaps });
    closers.push(() => taps.close());

    // events and metrics
    const bus = new EventBus();
    publishRegistrations(registrar, bus);
    publishCalls(calls, bus);
    taps.on('event', (e) => bus.publish(`tap.${e.name}`, { tapId: e.tapId, call: e.callId, dialect: e.dialect, body: e.body as unknown }));
    const metrics = createMetrics({ registrar, calls, media, stack, tapCount: () => taps.list().length });

    let proxy: Proxy | null = null;
    let draining = false;
    const app = createApp({
      registrar,
      calls,
      media,
      hangup: (call, reason) => proxy?.hangup(call, reason),
      users: config.users,
      tapsOf: (id) => taps.forCall(id).map((t) => t.toJSON()),
      extraApi: [tapsRouter(taps)],
      webRoot,
      apiToken: config.http.apiToken,
      log: log.child({ component: 'http' }),
      bus,
      metrics,
      ready: () => listening && !draining,
    });
    const servers: (http.Server | https.Server)[] = [];
    const wsOptions = { path: config.http.wsPath, pingInterval: config.http.wsPingInterval, maxMessageSize: 64 * 1024 };
    // the WebSocket transports close before their HTTP servers (closers run in reverse):
    // server.close() waits for upgraded sockets, which closeAllConnections() leaves alone
    const attachWs = (kind: 'ws' | 'wss', server: http.Server | https.Server): void => {
      const ws = new WsTransport(kind, wsOptions, () => transports.nextFlowId(), (buf, src) => stack!.receive(buf, src),
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
    servers.push(httpServer);
    transports.addInterface({ transport: 'ws', host: advertise, port: httpPort });

    let httpsPort: number | null = null;
    const tls = config.http.tls;
    if (tls.cert && tls.key) {
      const httpsServer = https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, app);
      attachWs('wss', httpsServer);
      httpsPort = await listen(httpsServer, tls.port, config.http.address);
      servers.push(httpsServer);
      transports.addInterface({ transport: 'wss', host: advertise, port: httpsPort });
    }

    const locality = new Locality(config.sip.domains, transports.interfaces);
    const local = new LocalEndpoint({ transactions, transports, calls, media, log: log.child({ component: 'local' }) });
    local.register('wsbridge', wsbridgeApp(taps));
    closers.push(() => local.close());
    proxy = new Proxy({
      transactions,
      transports,
      locality,
      resolver: new Resolver(config.sip.dns),
      registrar,
      calls,
      script: opts.script ?? defaultScript,
      timers,
      log: log.child({ component: 'proxy' }),
      media,
      local,
      startTap: (call, spec, clog) => {
        try {
          const options = typeof spec === 'string' ? parseCommand(spec) : { action: 'start' as const, options: parseStartBody(spec) };
          if (options.action !== 'start') throw new Error('a tap asked for by a call must be a start command');
          const tap = taps.start(call.id, options.options);
          clog.info({ tap: tap.id }, 'audio tap requested for the call');
        } catch (e) {
          clog.warn({ err: e }, 'the call\'s audio tap request was refused');
        }
      },
      maxForwards: config.sip.maxForwards,
    });
    transactions.tu = proxy;
    const running = proxy;
    closers.push(() => running.close());
    // a closed WebSocket takes its registrations and its calls with it
    transports.onFlowClosed = (flow) => {
      void registrar.connectionClosed(flow.id);
      running.flowClosed(flow.id);
    };
    listening = true;
    log.info({ udp: udpPort, http: httpPort, https: httpsPort, advertise, ws: `ws://${advertise}:${httpPort}${config.http.wsPath}`, users: config.users.length }, 'gateway listening');

    /**
     * Graceful shutdown: new calls get 503, calls up may end by themselves within `graceMs`,
     * the rest are hung up (BYE both ways); registrations stay in the store for the next start.
     */
    const drain = async (graceMs: number): Promise<void> => {
      draining = true;
      running.draining = true;
      const end = Date.now() + graceMs;
      while (calls.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      for (const call of calls.list()) running.hangup(call, 'gateway shutting down');
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
      proxy: running,
      local,
      ports: { udp: udpPort, http: httpPort, https: httpsPort },
      advertise,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

async function openStore(config: Config): Promise<LocationStore> {
  const s = config.registrar.store;
  switch (s.type) {
    case 'memory':
      return new MemoryLocationStore();
    case 'file':
      return FileLocationStore.open(path.resolve(s.path));
    case 'redis': {
      const { RedisLocationStore } = await import('./registrar/redis-store.js');
      return RedisLocationStore.connect(s.url, s.prefix);
    }
  }
}

function logRegistrations(registrar: Registrar, log: Logger): void {
  const rlog = log.child({ component: 'registrar' });
  registrar.on('registered', (b) => rlog.info({ aor: b.aor, contact: b.contact, transport: b.received.transport, source: `${b.received.address}:${b.received.port}` }, 'registered'));
  registrar.on('unregistered', (b, why) => rlog.info({ aor: b.aor, contact: b.contact, reason: why }, 'unregistered'));
  registrar.on('authFailed', (f) => rlog.warn(f, 'authentication failed'));
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
