/**
 * Load generator, browser side (its own process: `child_process.fork`, driven by RPC from
 * bench/media.bench.ts). Each call is one "browser tab": a WebSocket (subprotocol sip) of its
 * own, a REGISTER as its own user (digest when challenged), and a werift RTCPeerConnection
 * (ICE, DTLS-SRTP, rtcp-mux, BUNDLE, the sdes:mid header extension, PCMU only) whose offer goes
 * out in an INVITE to the desk-phone user. Once DTLS is up it sends 50 packets/s (werift
 * encrypts them) and receives every SRTP packet of its DTLS transport (werift decrypts them),
 * counting them and taking the one-way latency of each from the probe in its payload.
 *
 * Lighter than test/helpers/werift-peer.ts under JsSIP (no JsSIP, no audio codecs: the
 * payload is a fixed mu-law tone frame with the probe in its first bytes), so that the
 * generator, not the gateway, is less often the limit on this 2-core machine.
 *
 * Bounded: every wait has a timeout; the process exits after `maxSeconds`, or when the parent
 * goes away.
 */
import { RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCDtlsTransport, type RTCRtpTransceiver } from 'werift';
import { WebSocket } from 'ws';
import { browserLikeLocalSdp, LOOPBACK_PEER } from '../../test/helpers/werift-peer.js';
import { within as withinOr } from '../../test/helpers/latch.js';
import {
  digestAnswer,
  FRAME_MS,
  parseSip,
  readProbe,
  rnd,
  Samples,
  serveRpc,
  sipMessage,
  tagOf,
  toneFrame,
  uriOf,
  writeProbe,
  type SipMsg,
  type WindowReport,
} from './media-common.js';

interface Options {
  wsUrl: string;
  domain: string;
  users: string[];
  password: string;
  callee: string;
  cps: number;
  timeoutMs: number;
  /** index of the first call (generators share one numbering) */
  indexBase: number;
}

type Phase = 'new' | 'registering' | 'inviting' | 'answered' | 'connected' | 'failed' | 'ended';

interface BrowserCall {
  index: number;
  user: string;
  phase: Phase;
  ws: WebSocket | null;
  host: string;
  pc: RTCPeerConnection | null;
  tr: RTCRtpTransceiver | null;
  callId: string;
  fromTag: string;
  toTag: string | null;
  routes: string[];
  remoteTarget: string | null;
  waiters: Map<string, (m: SipMsg) => void>;
  // timings (ms since the call's start)
  t0: number;
  registeredMs: number;
  answeredMs: number;
  connectedMs: number;
  firstRxMs: number;
  // media
  seq: number;
  ts: number;
  nextAt: number;
  sent: number;
  sendErrors: number;
  received: number;
  winSent: number;
  winReceived: number;
  // evidence
  error: string | null;
  status: number | null;
  offer: string;
  answer: string;
  stateLog: string[];
  endedBy: string | null;
}

let opts: Options;
const calls: BrowserCall[] = [];
let measuring = false;
let other = 0;
const latency = new Samples();
const sendLag = new Samples();
const tone = toneFrame(440);

const PCMU = new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, payloadType: 0 });

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => withinOr(p, ms, what, (m) => new Error(m));

/** werift rejects RFC 3605 `a=rtcp:PORT` without an address (rtpengine writes it so): add one, as the anchors' client does. */
function fixAnswer(sdp: string): string {
  return sdp.replace(/^a=rtcp:(\d+)(\r?)$/gm, 'a=rtcp:$1 IN IP4 127.0.0.1$2');
}

function wsSend(call: BrowserCall, text: string): void {
  if (call.ws?.readyState === WebSocket.OPEN) call.ws.send(text);
}

function via(call: BrowserCall): string {
  return `SIP/2.0/WS ${call.host};branch=z9hG4bK${rnd()};rport`;
}

function contact(call: BrowserCall): string {
  return `<sip:${call.user}@${call.host};transport=ws>`;
}

function waitResponse(call: BrowserCall, callId: string, cseq: string, ms: number, onProvisional?: (m: SipMsg) => void): Promise<SipMsg> {
  const key = `${callId} ${cseq}`;
  return within(new Promise<SipMsg>((resolve) => {
    call.waiters.set(key, (m) => {
      if (m.status < 200) {
        onProvisional?.(m);
        return;
      }
      call.waiters.delete(key);
      resolve(m);
    });
  }), ms, `${call.user}: final response to ${cseq}`).finally(() => call.waiters.delete(key));
}

function onMessage(call: BrowserCall, raw: string): void {
  const m = parseSip(raw);
  if (!m) return;
  if (m.status) {
    const key = `${m.h('call-id')} ${m.h('cseq')}`;
    const w = call.waiters.get(key);
    if (w) return w(m);
    // a retransmitted 200 of our INVITE: ACK again
    if (m.status >= 200 && m.status < 300 && /INVITE/.test(m.h('cseq') ?? '') && m.h('call-id') === call.callId) sendAck(call);
    return;
  }
  // requests from the server
  const reply = (status: number, reason: string): void => {
    const headers: [string, string][] = [
      ...m.all('via').map((v): [string, string] => ['Via', v]),
      ['From', m.h('from')!],
      ['To', m.h('to')!],
      ['Call-ID', m.h('call-id')!],
      ['CSeq', m.h('cseq')!],
    ];
    wsSend(call, sipMessage(`SIP/2.0 ${status} ${reason}`, headers));
  };
  if (m.method === 'ACK') return;
  if (m.method === 'BYE' && m.h('call-id') === call.callId) {
    reply(200, 'OK');
    call.endedBy = `BYE from the server (Reason: ${m.h('reason') ?? '-'})`;
    call.stateLog.push(`${Date.now() - call.t0}ms ${call.endedBy}`);
    void teardown(call, false);
    return;
  }
  reply(m.method === 'OPTIONS' ? 200 : 481, m.method === 'OPTIONS' ? 'OK' : 'Call/Transaction Does Not Exist');
}

async function register(call: BrowserCall): Promise<void> {
  const callId = `${rnd()}@reg`;
  const fromTag = rnd(4);
  const uri = `sip:${opts.domain}`;
  let auth: [string, string] | null = null;
  for (let cseq = 1; cseq <= 3; cseq++) {
    wsSend(call, sipMessage(`REGISTER ${uri} SIP/2.0`, [
      ['Via', via(call)],
      ['Max-Forwards', '70'],
      ['From', `<sip:${call.user}@${opts.domain}>;tag=${fromTag}`],
      ['To', `<sip:${call.user}@${opts.domain}>`],
      ['Call-ID', callId],
      ['CSeq', `${cseq} REGISTER`],
      ['Contact', contact(call)],
      ['Expires', '600'],
      ...(auth ? [auth] : []),
    ]));
    const res = await waitResponse(call, callId, `${cseq} REGISTER`, opts.timeoutMs);
    if (res.status === 200) return;
    if (res.status === 401 || res.status === 407) {
      const ch = res.h(res.status === 401 ? 'www-authenticate' : 'proxy-authenticate')!;
      auth = [res.status === 401 ? 'Authorization' : 'Proxy-Authorization', digestAnswer(ch, 'REGISTER', uri, call.user, opts.password)];
      continue;
    }
    throw new Error(`REGISTER ${call.user}: ${res.status} ${res.reason}`);
  }
  throw new Error(`REGISTER ${call.user}: still challenged`);
}

/** A request in the call's dialog (ACK of the 2xx, BYE), along its route set. */
function sendInDialog(call: BrowserCall, method: 'ACK' | 'BYE', cseq: number): void {
  wsSend(call, sipMessage(`${method} ${call.remoteTarget} SIP/2.0`, [
    ['Via', via(call)],
    ['Max-Forwards', '70'],
    ...call.routes.map((r): [string, string] => ['Route', r]),
    ['From', `<sip:${call.user}@${opts.domain}>;tag=${call.fromTag}`],
    ['To', `<sip:${opts.callee}@${opts.domain}>;tag=${call.toTag}`],
    ['Call-ID', call.callId],
    ['CSeq', `${cseq} ${method}`],
  ]));
}

function sendAck(call: BrowserCall): void {
  if (!call.remoteTarget || !call.toTag) return;
  sendInDialog(call, 'ACK', 1);
}

function watchTransport(call: BrowserCall, d: RTCDtlsTransport): void {
  d.onRtp.subscribe((rtp) => {
    const p = readProbe(rtp.payload);
    if (!p) {
      other++;
      return;
    }
    call.received++;
    if (!call.firstRxMs) call.firstRxMs = Date.now() - call.t0;
    if (measuring) {
      call.winReceived++;
      latency.add(p.latencyUs);
    }
  });
  d.onStateChange.subscribe((s) => call.stateLog.push(`${Date.now() - call.t0}ms dtls:${s}`));
}

async function runCall(call: BrowserCall): Promise<void> {
  call.t0 = Date.now();
  call.phase = 'registering';
  call.host = `${rnd(4)}.invalid`;
  const ws = new WebSocket(opts.wsUrl, 'sip');
  call.ws = ws;
  ws.on('message', (d) => onMessage(call, d.toString()));
  ws.on('close', (code, reason) => {
    call.stateLog.push(`${Date.now() - call.t0}ms ws closed ${code} ${reason.toString()}`);
    if (call.phase !== 'ended' && call.phase !== 'failed') {
      call.error ??= `WebSocket closed (${code}) during ${call.phase}`;
      call.phase = 'failed';
    }
  });
  await within(new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', (e) => rej(e));
  }), opts.timeoutMs, `${call.user}: WebSocket open`);
  await register(call);
  call.registeredMs = Date.now() - call.t0;

  const pc = new RTCPeerConnection({
    codecs: { audio: [PCMU], video: [] },
    ...LOOPBACK_PEER,
  });
  call.pc = pc;
  pc.connectionStateChange.subscribe((s) => call.stateLog.push(`${Date.now() - call.t0}ms conn:${s}`));
  pc.iceConnectionStateChange.subscribe((s) => call.stateLog.push(`${Date.now() - call.t0}ms ice:${s}`));
  const tr = pc.addTransceiver('audio', { direction: 'sendrecv' });
  call.tr = tr;
  await pc.setLocalDescription(await pc.createOffer());
  await within(new Promise<void>((res) => {
    if (pc.iceGatheringState === 'complete') return res();
    pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete') res();
    });
  }), opts.timeoutMs, `${call.user}: ICE gathering`);
  call.offer = browserLikeLocalSdp(pc.localDescription!.sdp);
  const watched = new Set<RTCDtlsTransport>();
  const watchAll = (): void => {
    for (const d of pc.dtlsTransports) {
      if (watched.has(d)) continue;
      watched.add(d);
      watchTransport(call, d);
    }
  };
  watchAll();

  call.phase = 'inviting';
  call.callId = `${rnd()}@media-bench`;
  call.fromTag = rnd(4);
  const ruri = `sip:${opts.callee}@${opts.domain}`;
  wsSend(call, sipMessage(`INVITE ${ruri} SIP/2.0`, [
    ['Via', via(call)],
    ['Max-Forwards', '70'],
    ['From', `<sip:${call.user}@${opts.domain}>;tag=${call.fromTag}`],
    ['To', `<${ruri}>`],
    ['Call-ID', call.callId],
    ['CSeq', '1 INVITE'],
    ['Contact', contact(call)],
    ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS'],
  ], call.offer));
  const res = await waitResponse(call, call.callId, '1 INVITE', opts.timeoutMs);
  call.status = res.status;
  if (res.status >= 300) {
    // ACK the failure (same branch as the INVITE is what a UA does; over WS the server's
    // transaction is reliable and absorbs any ACK it can match, this one is good enough)
    throw new Error(`INVITE: ${res.status} ${res.reason}`);
  }
  call.toTag = tagOf(res.h('to'));
  call.routes = [...res.all('record-route')].reverse();
  call.remoteTarget = uriOf(res.h('contact') ?? ruri);
  call.answer = res.body;
  sendAck(call);
  call.answeredMs = Date.now() - call.t0;
  call.phase = 'answered';
  await pc.setRemoteDescription({ type: 'answer', sdp: fixAnswer(res.body) });
  watchAll();
  await within(new Promise<void>((resolve, reject) => {
    if (pc.connectionState === 'connected') return resolve();
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') resolve();
      if (s === 'failed') reject(new Error('connection failed'));
    });
  }), opts.timeoutMs, `${call.user}: ICE + DTLS connected`);
  watchAll();
  call.connectedMs = Date.now() - call.t0;
  call.nextAt = performance.now() + Math.random() * FRAME_MS;
  call.phase = 'connected';
}

/** The pacer: every connected call sends one packet per 20 ms slot, spread over the slot. */
function tick(): void {
  const now = performance.now();
  for (const call of calls) {
    if (call.phase !== 'connected') continue;
    if (now - call.nextAt > 10 * FRAME_MS) call.nextAt = now;
    while (call.nextAt <= now) {
      if (measuring) sendLag.add((now - call.nextAt) * 1000);
      call.nextAt += FRAME_MS;
      const payload = Buffer.allocUnsafe(160);
      tone.copy(payload);
      writeProbe(payload, call.index, call.seq);
      const header = new RtpHeader({ payloadType: 0, sequenceNumber: call.seq, timestamp: call.ts, marker: call.sent === 0 });
      call.seq = (call.seq + 1) & 0xffff;
      call.ts = (call.ts + 160) >>> 0;
      call.tr!.sender.sendRtp(new RtpPacket(header, payload)).catch(() => {
        call.sendErrors++;
      });
      call.sent++;
      if (measuring) call.winSent++;
    }
  }
}

async function teardown(call: BrowserCall, sendBye: boolean): Promise<void> {
  const wasUp = call.phase === 'connected' || call.phase === 'answered';
  if (call.phase !== 'failed') call.phase = 'ended';
  if (sendBye && wasUp && call.remoteTarget && call.toTag) {
    sendInDialog(call, 'BYE', 2);
    try {
      const r = await waitResponse(call, call.callId, '2 BYE', opts.timeoutMs);
      if (r.status !== 200) call.error ??= `BYE: ${r.status} ${r.reason}`;
    } catch (e) {
      call.error ??= (e as Error).message;
    }
  }
  await call.pc?.close().catch(() => undefined);
  call.pc = null;
  call.ws?.close();
}

const pacer = setInterval(tick, 1);
pacer.unref();

serveRpc({
  /** starts the calls at `cps`; resolves once every call is up or failed */
  async start(o: Options) {
    opts = o;
    calls.length = 0;
    const runs: Promise<void>[] = [];
    for (let i = 0; i < o.users.length; i++) {
      const call: BrowserCall = {
        index: o.indexBase + i, user: o.users[i]!, phase: 'new', ws: null, host: '', pc: null, tr: null, callId: '', fromTag: '', toTag: null, routes: [],
        remoteTarget: null, waiters: new Map(), t0: 0, registeredMs: 0, answeredMs: 0, connectedMs: 0, firstRxMs: 0,
        seq: Math.floor(Math.random() * 65536), ts: Math.floor(Math.random() * 2 ** 31), nextAt: 0, sent: 0, sendErrors: 0, received: 0,
        winSent: 0, winReceived: 0, error: null, status: null, offer: '', answer: '', stateLog: [], endedBy: null,
      };
      calls.push(call);
      runs.push(runCall(call).catch((e: unknown) => {
        call.error ??= (e as Error).message;
        call.phase = 'failed';
      }));
      await new Promise((r) => setTimeout(r, 1000 / o.cps));
    }
    await Promise.all(runs);
    return summary();
  },
  status: summary,
  windowStart() {
    for (const c of calls) {
      c.winSent = 0;
      c.winReceived = 0;
    }
    latency.clear();
    sendLag.clear();
    other = 0;
    measuring = true;
    return true;
  },
  windowStop(): WindowReport {
    measuring = false;
    let sent = 0;
    let received = 0;
    let up = 0;
    const silent: number[] = [];
    for (const c of calls) {
      sent += c.winSent;
      received += c.winReceived;
      if (c.phase === 'connected') {
        up++;
        if (c.winReceived === 0) silent.push(c.index);
      }
    }
    return { sent, received, silentCalls: silent, callsUp: up, latency: latency.summary(), latencyHist: latency.histogram(), sendLag: sendLag.summary(), sendLagHist: sendLag.histogram(), other };
  },
  async hangup() {
    await Promise.all(calls.map((c) => teardown(c, true)));
    return calls.map((c) => ({
      index: c.index, user: c.user, phase: c.phase, status: c.status, error: c.error, endedBy: c.endedBy,
      sent: c.sent, sendErrors: c.sendErrors, received: c.received,
      registeredMs: c.registeredMs, answeredMs: c.answeredMs, connectedMs: c.connectedMs, firstRxMs: c.firstRxMs,
      offer: c.offer, answer: c.answer, stateLog: c.stateLog,
    }));
  },
}, Number(process.env.MEDIA_GEN_MAX_SECONDS ?? 900));

function summary(): Record<string, number> {
  const out: Record<string, number> = { total: calls.length };
  for (const c of calls) out[c.phase] = (out[c.phase] ?? 0) + 1;
  out.flowing = calls.filter((c) => c.phase === 'connected' && c.received > 0).length;
  return out;
}
