/**
 * A call to tap, for the taps' integration tests: the real gateway (in this process) with
 * its own TapService (worker threads and all), and two RtpPhones (alice calls bob) whose
 * call is anchored in mediasoup.
 */
import type { Call } from '../../server/calls/call.js';
import type { Gateway, GatewayOptions } from '../../server/gateway.js';
import { goertzelPower } from '../../server/audio/tone.js';
import type { TapService } from '../../server/taps/tap-service.js';
import type { TapEvent } from '../../server/taps/tap.js';
import { startTestGateway, waitFor } from './gateway.js';
import { WsTapServer } from './ws-tap-server.js';
import { registeredPair, type CodecName, type PhoneCall, type RtpPhone } from './rtp-phone.js';

export interface TapRig {
  gw: Gateway;
  taps: TapService;
  events: TapEvent[];
  phones: RtpPhone[];
  close(): Promise<void>;
}

type GatewayConfig = Parameters<typeof startTestGateway>[0];

/** `over`: the gateway's config for this rig (its taps section: limits, threads; allowed URLs). */
export async function startRig(over: GatewayConfig = {}, opts: GatewayOptions = {}): Promise<TapRig> {
  const gw = await startTestGateway(over, opts);
  const events: TapEvent[] = [];
  gw.taps.on('event', (e) => events.push(e));
  const rig: TapRig = {
    gw,
    taps: gw.taps,
    events,
    phones: [],
    async close() {
      for (const p of rig.phones) await p.close().catch(() => undefined);
      await gw.close();
    },
  };
  return rig;
}

/**
 * A rig and a `ws` tap server, as the taps' suites start them in before(). `gateway`: the
 * gateway's config and options, made knowing the server (e.g. its URL in taps.allowedUrls).
 */
export async function startRigAndServer(gateway?: (server: WsTapServer) => [GatewayConfig, GatewayOptions?]): Promise<{ rig: TapRig; server: WsTapServer }> {
  const server = await WsTapServer.start();
  const [over, opts] = gateway?.(server) ?? [{}];
  return { rig: await startRig(over, opts), server };
}

/** after(): the server first (its sockets), then the rig. */
export async function closeRigAndServer(rig: TapRig | undefined, server: WsTapServer | undefined): Promise<void> {
  await server?.close();
  await rig?.close();
}

export interface TappedCall {
  alice: RtpPhone;
  bob: RtpPhone;
  /** alice's side of the call */
  call: PhoneCall;
  /** bob's side */
  incoming: PhoneCall;
  /** the gateway's call */
  gwCall: Call;
  hangup(): Promise<void>;
}

/** alice (tone `callerTone`) calls bob (tone `calleeTone`), both registered; resolves once audio flows. */
export async function placeCall(rig: TapRig, o: { callerTone?: number | null; calleeTone?: number | null; codecs?: CodecName[] } = {}): Promise<TappedCall> {
  const gateway = `127.0.0.1:${rig.gw.ports.udp}`;
  const { alice, bob } = await registeredPair(`127.0.0.1:${rig.gw.ports.udp}`, {
    alice: { tone: o.callerTone === undefined ? 440 : o.callerTone, codecs: o.codecs ?? ['PCMU'] },
    bob: { tone: o.calleeTone === undefined ? 880 : o.calleeTone, codecs: o.codecs ?? ['PCMU'], autoAnswer: { ringMs: 20 } },
  });
  rig.phones.push(alice, bob);
  const before = new Set(rig.gw.calls.list().map((c) => c.id));
  const call = alice.call('bob');
  await call.answered;
  const incoming = await bob.nextIncoming();
  await incoming.answered;
  const gwCall = await waitFor('the gateway call', () => rig.gw.calls.list().find((c) => !before.has(c.id) && c.state === 'answered'), 3000);
  return {
    alice,
    bob,
    call,
    incoming,
    gwCall,
    async hangup() {
      await call.hangup().catch(() => undefined);
      await alice.unregister().catch(() => undefined);
      await bob.unregister().catch(() => undefined);
      await alice.close();
      await bob.close();
      rig.phones = rig.phones.filter((p) => p !== alice && p !== bob);
    },
  };
}

/** int16 little-endian bytes -> samples (copies: a Buffer may be unaligned). */
export function l16(buf: Buffer): Int16Array {
  const out = new Int16Array(buf.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = buf.readInt16LE(i * 2);
  return out;
}

export function concat(chunks: Int16Array[]): Int16Array {
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Share of the signal's power at each frequency (Goertzel, after removing DC). */
export function toneShares(samples: Int16Array, rate: number, freqs: number[]): number[] {
  let mean = 0;
  for (const s of samples) mean += s;
  mean /= samples.length || 1;
  let total = 0;
  const centred = new Float64Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    centred[i] = samples[i]! - mean;
    total += centred[i]! * centred[i]!;
  }
  total /= samples.length || 1;
  return freqs.map((f) => (total > 0 ? goertzelPower(centred, rate, f) / total : 0));
}

export function rms(samples: Int16Array): number {
  let acc = 0;
  for (const s of samples) acc += s * s;
  return Math.sqrt(acc / (samples.length || 1));
}

/** The sine of `freq` as L16 little-endian bytes. */
export function sineL16(freq: number, rate: number, ms: number, amplitude = 8000): Buffer {
  const n = Math.round((rate * ms) / 1000);
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate)), i * 2);
  return b;
}
