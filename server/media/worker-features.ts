/**
 * What the running mediasoup worker can do beyond stock 3.19.3, found out by trying it once at
 * start-up: our own build carries a small patch set (scripts/mediasoup/worker-patches.mjs), the
 * prebuilt worker mediasoup downloads (a laptop with internet, an image built with MEDIASOUP_WORKER=prebuilt) does not, and the phone
 * legs take the faster path only when the worker has it.
 *
 * - catchAllSsrc: a producer made with no SSRC (encodings: [{}]) takes the first SSRC its
 *   transport receives: a phone's first packet is relayed without learning its SSRC first.
 * - earlyReplay: RTP a PlainTransport received before connect() (from the tuple it then
 *   connects to), and RTP of a producer before its first consumer, reach that consumer.
 * - stripsExtensions: a consumer with no header extensions (a desk phone's leg) is sent RTP
 *   without the extension block (mediasoup adds a MID slot to every packet otherwise).
 * - unknownSourceWarnings: RTP reaching a connected PlainTransport from another address is
 *   reported as an 'rtp' warning naming the transport's local port (a phone that moved is
 *   noticed at its first packet from there, not by polling every phone leg).
 *
 * The test: a router, two loopback PlainTransports, a producer (SSRC-less if the worker takes
 * it), three marked packets sent from a UDP socket before connect(), then connect, consume on
 * the other transport, three more packets; what the far socket receives tells the rest; one
 * packet from the far socket to the first transport, and the warning it brings (or not).
 */
import dgram from 'node:dgram';
import type { Router, RtpCodecCapability, RtpCodecParameters, Worker } from 'mediasoup/types';

export interface WorkerFeatures {
  catchAllSsrc: boolean;
  earlyReplay: boolean;
  stripsExtensions: boolean;
  unknownSourceWarnings: boolean;
  /** why the test could not run (the features are then all false) */
  error?: string;
}

export const NO_FEATURES: WorkerFeatures = { catchAllSsrc: false, earlyReplay: false, stripsExtensions: false, unknownSourceWarnings: false };

/** Subscribes to the workers' warnings (mediasoup's log listener); returns the unsubscribe. */
export type WarningTap = (listener: (log: string) => void) => () => void;

const PCMU: RtpCodecCapability = { kind: 'audio', mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, preferredPayloadType: 0 };
const PCMU_PARAMS: RtpCodecParameters = { mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 };
const SSRC = 0x5e1f7e57;
const PAYLOAD = 160;
/** how long the test waits for what it sent (loopback: a few ms; a loaded machine: more) */
const WAIT_MS = 1500;

function rtp(seq: number): Buffer {
  const p = Buffer.alloc(12 + PAYLOAD, 0xff);
  p[0] = 0x80;
  p[1] = seq === 1 ? 0x80 : 0; // marker on the first: the start of a talkspurt
  p.writeUInt16BE(seq, 2);
  p.writeUInt32BE(seq * PAYLOAD, 4);
  p.writeUInt32BE(SSRC, 8);
  p.writeUInt16BE(seq, 12); // the payload names its packet
  return p;
}

async function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('error', () => {});
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the test on `worker` (a router of its own, closed after). Never throws. */
export async function detectWorkerFeatures(worker: Worker, warnings: WarningTap | null = null): Promise<WorkerFeatures> {
  let router: Router | null = null;
  const sockets: dgram.Socket[] = [];
  let stopListening = (): void => {};
  try {
    router = await worker.createRouter({ mediaCodecs: [PCMU] });
    const listenInfo = { protocol: 'udp' as const, ip: '127.0.0.1' };
    const near = await router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: false });
    const far = await router.createPlainTransport({ listenInfo, rtcpMux: true, comedia: false });
    const phone = await socket();
    const sink = await socket();
    sockets.push(phone, sink);
    const got: Buffer[] = [];
    sink.on('message', (m) => got.push(m));
    const codecs = [PCMU_PARAMS];
    let catchAllSsrc = true;
    let producer;
    try {
      producer = await near.produce({ kind: 'audio', rtpParameters: { codecs, encodings: [{}], rtcp: { cname: 'self-test' } } });
    } catch {
      catchAllSsrc = false;
      producer = await near.produce({ kind: 'audio', rtpParameters: { codecs, encodings: [{ ssrc: SSRC }], rtcp: { cname: 'self-test' } } });
    }
    const nearPort = near.tuple.localPort;
    for (let seq = 1; seq <= 3; seq++) phone.send(rtp(seq), nearPort, '127.0.0.1');
    // the worker reads them before it reads the connect request
    await sleep(50);
    await near.connect({ ip: '127.0.0.1', port: phone.address().port });
    await far.connect({ ip: '127.0.0.1', port: sink.address().port });
    await far.consume({ producerId: producer.id, rtpCapabilities: { codecs: [PCMU], headerExtensions: [] } });
    for (let seq = 4; seq <= 6; seq++) phone.send(rtp(seq), nearPort, '127.0.0.1');
    const until = Date.now() + WAIT_MS;
    while (Date.now() < until && !got.some((p) => p.length >= 14 && p.readUInt16BE(p.length - PAYLOAD) === 6)) await sleep(10);
    const payloadSeq = (p: Buffer): number => p.readUInt16BE(p.length - PAYLOAD);
    // judged now: the far transport's RTCP reaches the sink too while the last step waits
    const relayed = {
      catchAllSsrc: catchAllSsrc && got.length > 0,
      earlyReplay: got.some((p) => p.length >= 12 + PAYLOAD && payloadSeq(p) === 1),
      stripsExtensions: got.length > 0 && got.every((p) => p.length === 12 + PAYLOAD && (p[0]! & 0x10) === 0),
    };
    // RTP from an address `near` is not connected to
    let warned = false;
    if (warnings) {
      stopListening = warnings((log) => {
        if (log.includes(`ignoring RTP packet from unknown IP:port [localPort:${nearPort}]`)) warned = true;
      });
      sink.send(rtp(7), nearPort, '127.0.0.1');
      // a worker without the patch says nothing: a shorter wait (a late warning only costs the
      // faster check of moved phones, the periodic one stays)
      const until2 = Date.now() + WAIT_MS / 3;
      while (Date.now() < until2 && !warned) await sleep(10);
    }
    return { ...relayed, unknownSourceWarnings: warned };
  } catch (e) {
    return { ...NO_FEATURES, error: (e as Error).message };
  } finally {
    stopListening();
    router?.close();
    for (const s of sockets) s.close();
  }
}

/** One test per process and worker binary: every pool started in it shares the answer. */
let cached: Promise<WorkerFeatures> | null = null;
export function workerFeatures(worker: Worker, warnings: WarningTap | null = null): Promise<WorkerFeatures> {
  cached ??= detectWorkerFeatures(worker, warnings);
  return cached;
}

/** The features a router's worker has (set by WorkerPool on the routers it makes). */
export function routerFeatures(router: Router): WorkerFeatures {
  const f = router.appData.workerFeatures as WorkerFeatures | undefined;
  return f ?? NO_FEATURES;
}
