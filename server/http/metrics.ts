/**
 * Prometheus metrics (prom-client): registrations, calls and their outcomes, SIP traffic,
 * media bytes and losses, taps, mediasoup workers' CPU and memory, and Node's own.
 * Gauges are read when scraped; counters move as things happen.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricType } from 'prom-client';
import type { CallRegistry } from '../calls/call-registry.js';
import type { MediaService } from '../media/media-service.js';
import type { Registrar } from '../registrar/registrar.js';
import type { SipStack } from '../sip/stack.js';

export interface MetricsDeps {
  registrar: Registrar;
  calls: CallRegistry;
  media: MediaService | null;
  stack: SipStack;
  /** live taps, when the taps service runs */
  tapCount?: () => number;
  /** the taps' frame deviation, counted in their worker threads (cumulative buckets, seconds) */
  tapDeviation?: () => { le: number[]; cumulative: number[]; sum: number; count: number };
}

/**
 * A histogram whose buckets are counted elsewhere (the tap threads, in shared memory): read
 * when scraped instead of observed here.
 */
class PooledHistogram extends Histogram {
  constructor(
    private readonly cfg: { name: string; help: string; registers: Registry[] },
    private readonly read: () => { le: number[]; cumulative: number[]; sum: number; count: number },
  ) {
    super(cfg);
  }

  /** what the registry prints (prom-client's histogram has its own path for the text format) */
  getForPromString(): ReturnType<Histogram['get']> {
    return this.get();
  }

  override async get(): ReturnType<Histogram['get']> {
    const r = this.read();
    const name = this.cfg.name;
    return {
      name,
      help: this.cfg.help,
      // prom-client declares the type an enum but writes (and reads) the string
      type: 'histogram' as unknown as MetricType,
      aggregator: 'sum',
      collect: () => undefined,
      values: [
        ...r.le.map((le, i) => ({ labels: { le: le === Infinity ? '+Inf' : le }, value: r.cumulative[i]!, metricName: `${name}_bucket` })),
        { labels: {}, value: r.sum, metricName: `${name}_sum` },
        { labels: {}, value: r.count, metricName: `${name}_count` },
      ],
    };
  }
}

/** The final status a call ended with, as a label: 200 answered, else the failure's code. */
export function callOutcome(reason: string | null, answered: boolean): string {
  if (answered) return '200';
  const m = /(\d{3})/.exec(reason ?? '');
  if (m) return m[1]!;
  return reason === 'cancelled' ? '487' : 'other';
}

export function createMetrics(d: MetricsDeps): Registry {
  const registry = new Registry();
  // prom-client's event-loop lag histogram samples every 10 ms by default: 100 wake-ups a
  // second of an otherwise idle process, a third of its idle CPU. Every 100 ms still shows lag.
  collectDefaultMetrics({ register: registry, prefix: 'gateway_node_', eventLoopMonitoringPrecision: 100 });

  new Gauge({
    name: 'gateway_registrations',
    help: 'Current registrations (bindings) in the location store',
    registers: [registry],
    async collect() {
      this.set((await d.registrar.store.list()).length);
    },
  });
  new Gauge({
    name: 'gateway_calls_active',
    help: 'Calls now up (ringing or answered)',
    registers: [registry],
    collect() {
      this.set(d.calls.size);
    },
  });
  const attempts = new Counter({ name: 'gateway_call_attempts_total', help: 'Calls by final status (200 answered, else the failure code)', labelNames: ['status'], registers: [registry] });
  d.calls.on('ended', (c) => attempts.inc({ status: callOutcome(c.endReason, c.answeredAt !== null) }));

  new Counter({
    name: 'gateway_sip_messages_total',
    help: 'SIP messages received, and those refused as malformed',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ kind: 'received' }, d.stack.counters.received);
      this.inc({ kind: 'malformed' }, d.stack.counters.malformed);
      this.inc({ kind: 'keepalive' }, d.stack.counters.keepalives);
    },
  });

  const media = d.media;
  if (media) {
    new Gauge({ name: 'gateway_media_sessions', help: 'Calls whose RTP the gateway anchors', registers: [registry], collect() { this.set(media.size); } });
    new Counter({
      name: 'gateway_media_bytes_total',
      help: 'Media bytes received from and sent to the parties of calls, as the periodic media check reads each leg (every 15 checks; a call shorter than that is not read)',
      labelNames: ['direction'],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ direction: 'received' }, media.totals.bytesReceived);
        this.inc({ direction: 'sent' }, media.totals.bytesSent);
      },
    });
    new Gauge({
      name: 'gateway_media_packets',
      help: 'RTP packets received from the parties of live calls, and those lost on the way',
      labelNames: ['kind'],
      registers: [registry],
      async collect() {
        let received = 0;
        let lost = 0;
        for (const c of d.calls.list()) {
          const s = await media.stats(c.id).catch(() => null);
          for (const leg of s ? [s.caller, ...Object.values(s.callees)] : []) {
            received += leg?.packetsReceived ?? 0;
            lost += leg?.packetsLost ?? 0;
          }
        }
        this.set({ kind: 'received' }, received);
        this.set({ kind: 'lost' }, lost);
      },
    });
    new Gauge({
      name: 'gateway_media_worker_cpu_seconds',
      help: 'CPU time of each mediasoup worker',
      labelNames: ['pid', 'mode'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const u of await media.pool.usage().catch(() => [])) {
          this.set({ pid: String(u.pid), mode: 'user' }, u.cpuUser / 1000);
          this.set({ pid: String(u.pid), mode: 'system' }, u.cpuSystem / 1000);
        }
      },
    });
    new Gauge({
      name: 'gateway_media_worker_max_rss_bytes',
      help: 'Peak resident memory of each mediasoup worker',
      labelNames: ['pid'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const u of await media.pool.usage().catch(() => [])) this.set({ pid: String(u.pid) }, u.maxRss * 1024);
      },
    });
  }
  if (d.tapCount) {
    const count = d.tapCount;
    new Gauge({ name: 'gateway_taps_active', help: 'Audio taps now streaming', registers: [registry], collect() { this.set(count()); } });
  }
  if (d.tapDeviation) {
    new PooledHistogram({ name: 'gateway_tap_frame_deviation_seconds', help: 'How far each tap\'s 20 ms frame step strayed from 20 ms (all taps, all tap threads)', registers: [registry] }, d.tapDeviation);
  }
  return registry;
}
