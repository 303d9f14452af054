/**
 * Load generator, desk-phone side (its own process: `child_process.fork`, driven by RPC from
 * bench/media.bench.ts). One SIP user agent over UDP registers as `user` and answers every
 * INVITE like a plain RTP desk phone: 200 OK with an RTP/AVP PCMU answer on an RTP socket of
 * its own per call; from the ACK on it sends 50 packets/s per call (symmetric RTP: from the
 * socket it receives on) to the c=/m= of the offer, and counts what arrives, with the one-way
 * latency of each packet from the probe in its payload (bench/lib/media-common.ts).
 *
 * Bounded: the process exits after `maxSeconds`, or when the parent goes away.
 */
import dgram from 'node:dgram';
import {
  digestAnswer,
  FRAME_MS,
  parseSip,
  readProbe,
  rnd,
  Samples,
  sdpAudioTarget,
  serveRpc,
  sipMessage,
  tagOf,
  toneFrame,
  writeProbe,
  type SipMsg,
  type WindowReport,
} from './media-common.js';

interface PhoneCall {
  index: number;
  callId: string;
  toTag: string;
  rtp: dgram.Socket;
  rtpPort: number;
  remote: { address: string; port: number };
  final: string;
  finalTimer: NodeJS.Timeout | null;
  acked: boolean;
  ended: string | null;
  seq: number;
  ts: number;
  ssrc: number;
  nextAt: number;
  sent: number;
  received: number;
  winSent: number;
  winReceived: number;
  firstRxAt: number;
  invitedAt: number;
  offer: string;
  answer: string;
}

const calls = new Map<string, PhoneCall>();
let sock: dgram.Socket;
let target = { host: '127.0.0.1', port: 5060 };
let user = 'uas';
let password = 'anchors';
let localPort = 0;
let nextIndex = 0;
let measuring = false;
let other = 0;
const latency = new Samples();
const sendLag = new Samples();
const tone = toneFrame(880);
const pending = new Map<string, (m: SipMsg) => void>();
const log: string[] = [];

function note(s: string): void {
  if (log.length < 200) log.push(`${new Date().toISOString()} ${s}`);
}

function send(text: string, port = target.port, host = target.host): void {
  sock.send(text, port, host);
}

function via(): string {
  return `SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${rnd()};rport`;
}

async function register(): Promise<void> {
  const callId = `${rnd()}@phone-gen`;
  const fromTag = rnd(4);
  const uri = `sip:${target.host}`;
  let auth: [string, string] | null = null;
  for (let cseq = 1; cseq <= 3; cseq++) {
    const req = sipMessage(`REGISTER ${uri} SIP/2.0`, [
      ['Via', via()],
      ['Max-Forwards', '70'],
      ['From', `<sip:${user}@${target.host}>;tag=${fromTag}`],
      ['To', `<sip:${user}@${target.host}>`],
      ['Call-ID', callId],
      ['CSeq', `${cseq} REGISTER`],
      ['Contact', `<sip:${user}@127.0.0.1:${localPort}>`],
      ['Expires', '3600'],
      ...(auth ? [auth] : []),
    ]);
    const res = await transact(callId, `${cseq} REGISTER`, req);
    if (res.status === 200) return;
    if (res.status === 401 || res.status === 407) {
      const ch = res.h(res.status === 401 ? 'www-authenticate' : 'proxy-authenticate')!;
      auth = [res.status === 401 ? 'Authorization' : 'Proxy-Authorization', digestAnswer(ch, 'REGISTER', uri, user, password)];
      continue;
    }
    throw new Error(`REGISTER ${user}: ${res.status} ${res.reason}`);
  }
  throw new Error(`REGISTER ${user}: still challenged`);
}

/** Sends a request, retransmitting (T1 = 500 ms, doubling) until a final response; 10 s at most. */
function transact(callId: string, cseq: string, text: string): Promise<SipMsg> {
  const key = `${callId} ${cseq}`;
  return new Promise((resolve, reject) => {
    let wait = 500;
    let timer: NodeJS.Timeout;
    const again = (): void => {
      send(text);
      timer = setTimeout(again, (wait = Math.min(wait * 2, 4000)));
    };
    const giveUp = setTimeout(() => {
      clearTimeout(timer);
      pending.delete(key);
      reject(new Error(`no final response to ${cseq}`));
    }, 10_000);
    pending.set(key, (m) => {
      if (m.status < 200) return;
      clearTimeout(timer);
      clearTimeout(giveUp);
      pending.delete(key);
      resolve(m);
    });
    again();
  });
}

function responseTo(req: SipMsg, status: number, reason: string, toTag: string | null, body = '', extra: [string, string][] = []): string {
  const to = req.h('to')!;
  const headers: [string, string][] = [
    ...req.all('via').map((v): [string, string] => ['Via', v]),
    ...req.all('record-route').map((v): [string, string] => ['Record-Route', v]),
    ['From', req.h('from')!],
    ['To', toTag && !tagOf(to) ? `${to};tag=${toTag}` : to],
    ['Call-ID', req.h('call-id')!],
    ['CSeq', req.h('cseq')!],
    ...extra,
  ];
  return sipMessage(`SIP/2.0 ${status} ${reason}`, headers, body);
}

/** Where a response goes: the top Via's received/rport, else its sent-by (RFC 3261 §18.2.2, RFC 3581). */
function replyTarget(req: SipMsg, rinfo: dgram.RemoteInfo): { port: number; host: string } {
  const v = req.h('via') ?? '';
  const rport = /;rport=(\d+)/.exec(v)?.[1];
  const received = /;received=([^;\s]+)/.exec(v)?.[1];
  if (rport) return { host: received ?? rinfo.address, port: Number(rport) };
  const sentBy = /SIP\/2\.0\/UDP\s+([^;\s:]+)(?::(\d+))?/i.exec(v);
  return sentBy ? { host: received ?? sentBy[1]!, port: Number(sentBy[2] ?? 5060) } : { host: rinfo.address, port: rinfo.port };
}

function answerSdp(port: number, version: number): string {
  return ['v=0', `o=- ${port} ${version} IN IP4 127.0.0.1`, 's=media-bench-phone', 'c=IN IP4 127.0.0.1', 't=0 0',
    `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=ptime:20', 'a=sendrecv', ''].join('\r\n');
}

async function onInvite(req: SipMsg, rinfo: dgram.RemoteInfo): Promise<void> {
  const callId = req.h('call-id')!;
  const dest = replyTarget(req, rinfo);
  const existing = calls.get(callId);
  if (existing) {
    if (tagOf(req.h('to'))) {
      // re-INVITE: answer with the same SDP, keep sending to the new target if any
      const t = sdpAudioTarget(req.body);
      if (t && t.port !== 0 && t.address !== '0.0.0.0') existing.remote = t;
      note(`re-INVITE in ${callId}:\n${req.body}`);
      send(responseTo(req, 200, 'OK', existing.toTag, answerSdp(existing.rtpPort, 2), [['Contact', `<sip:${user}@127.0.0.1:${localPort}>`]]), dest.port, dest.host);
      return;
    }
    // a retransmission: the same final again
    send(existing.final, dest.port, dest.host);
    return;
  }
  const t = sdpAudioTarget(req.body);
  if (!t) {
    note(`INVITE ${callId} without an audio target:\n${req.body}`);
    send(responseTo(req, 488, 'Not Acceptable Here', rnd(4)), dest.port, dest.host);
    return;
  }
  const rtp = dgram.createSocket('udp4');
  await new Promise<void>((r) => rtp.bind(0, '127.0.0.1', () => r()));
  const rtpPort = rtp.address().port;
  const toTag = rnd(4);
  const answer = answerSdp(rtpPort, 1);
  const call: PhoneCall = {
    index: nextIndex++,
    callId,
    toTag,
    rtp,
    rtpPort,
    remote: t,
    final: responseTo(req, 200, 'OK', toTag, answer, [['Contact', `<sip:${user}@127.0.0.1:${localPort}>`]]),
    finalTimer: null,
    acked: false,
    ended: null,
    seq: Math.floor(Math.random() * 65536),
    ts: Math.floor(Math.random() * 2 ** 31),
    ssrc: Math.floor(Math.random() * 2 ** 32) >>> 0,
    nextAt: 0,
    sent: 0,
    received: 0,
    winSent: 0,
    winReceived: 0,
    firstRxAt: 0,
    invitedAt: Date.now(),
    offer: req.body,
    answer,
  };
  calls.set(callId, call);
  rtp.on('message', (msg) => onRtp(call, msg));
  rtp.on('error', (e) => note(`rtp socket of ${callId}: ${e.message}`));
  send(responseTo(req, 100, 'Trying', null), dest.port, dest.host);
  send(call.final, dest.port, dest.host);
  // retransmit the 200 until the ACK (RFC 3261 §13.3.1.4)
  let wait = 500;
  const again = (): void => {
    if (call.acked || call.ended) return;
    if (Date.now() - call.invitedAt > 32_000) {
      note(`no ACK for the 200 of ${callId}`);
      return;
    }
    send(call.final, dest.port, dest.host);
    call.finalTimer = setTimeout(again, (wait = Math.min(wait * 2, 4000)));
  };
  call.finalTimer = setTimeout(again, wait);
}

function startMedia(call: PhoneCall): void {
  if (call.acked) return;
  call.acked = true;
  if (call.finalTimer) clearTimeout(call.finalTimer);
  call.nextAt = performance.now() + Math.random() * FRAME_MS;
}

function endCall(call: PhoneCall, why: string): void {
  if (call.ended) return;
  call.ended = why;
  if (call.finalTimer) clearTimeout(call.finalTimer);
  try {
    call.rtp.close();
  } catch {
    // closed
  }
}

function onRtp(call: PhoneCall, msg: Buffer): void {
  if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! >= 200 && msg[1]! <= 204)) {
    other++;
    return;
  }
  const cc = msg[0]! & 0x0f;
  let off = 12 + cc * 4;
  if (msg[0]! & 0x10) off += 4 + msg.readUInt16BE(off + 2) * 4;
  const p = readProbe(msg, off);
  if (!p) {
    other++;
    return;
  }
  call.received++;
  if (!call.firstRxAt) call.firstRxAt = Date.now();
  if (measuring) {
    call.winReceived++;
    latency.add(p.latencyUs);
  }
}

/** The pacer: every call sends one packet per 20 ms slot, spread over the slot. */
function tick(): void {
  const now = performance.now();
  for (const call of calls.values()) {
    if (!call.acked || call.ended) continue;
    if (now - call.nextAt > 10 * FRAME_MS) call.nextAt = now; // far behind: skip, do not burst
    while (call.nextAt <= now) {
      if (measuring) sendLag.add((now - call.nextAt) * 1000);
      call.nextAt += FRAME_MS;
      const pkt = Buffer.allocUnsafe(12 + 160);
      pkt[0] = 0x80;
      pkt[1] = call.sent === 0 ? 0x80 : 0x00; // marker on the first, PT 0 (PCMU)
      pkt.writeUInt16BE(call.seq, 2);
      pkt.writeUInt32BE(call.ts >>> 0, 4);
      pkt.writeUInt32BE(call.ssrc, 8);
      tone.copy(pkt, 12);
      writeProbe(pkt.subarray(12), call.index, call.seq);
      call.seq = (call.seq + 1) & 0xffff;
      call.ts = (call.ts + 160) >>> 0;
      call.rtp.send(pkt, call.remote.port, call.remote.address);
      call.sent++;
      if (measuring) call.winSent++;
    }
  }
}

function onSip(buf: Buffer, rinfo: dgram.RemoteInfo): void {
  const m = parseSip(buf.toString());
  if (!m) return;
  if (m.status) {
    const cseq = m.h('cseq') ?? '';
    pending.get(`${m.h('call-id')} ${cseq}`)?.(m);
    return;
  }
  const callId = m.h('call-id') ?? '';
  const call = calls.get(callId);
  const dest = replyTarget(m, rinfo);
  switch (m.method) {
    case 'INVITE':
      void onInvite(m, rinfo).catch((e: unknown) => note(`INVITE ${callId}: ${(e as Error).message}`));
      return;
    case 'ACK':
      if (call) startMedia(call);
      return;
    case 'BYE':
      send(responseTo(m, 200, 'OK', null), dest.port, dest.host);
      if (call) endCall(call, `BYE (reason: ${m.h('reason') ?? '-'})`);
      return;
    case 'CANCEL':
      send(responseTo(m, 200, 'OK', null), dest.port, dest.host);
      if (call) {
        note(`CANCEL of ${callId}`);
        endCall(call, 'CANCEL');
      }
      return;
    default:
      send(responseTo(m, 200, 'OK', call?.toTag ?? rnd(4)), dest.port, dest.host);
  }
}

serveRpc({
  async start(args: { target: string; user: string; password: string }) {
    const [host, port] = args.target.split(':');
    target = { host: host!, port: Number(port) };
    user = args.user;
    password = args.password;
    sock = dgram.createSocket('udp4');
    sock.on('message', onSip);
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    localPort = sock.address().port;
    await register();
    setInterval(tick, 1);
    return { sipPort: localPort, pid: process.pid };
  },
  status() {
    let up = 0;
    let flowing = 0;
    for (const c of calls.values()) {
      if (c.ended) continue;
      if (c.acked) up++;
      if (c.received > 0) flowing++;
    }
    return { calls: calls.size, up, flowing, ended: [...calls.values()].filter((c) => c.ended).length };
  },
  windowStart() {
    for (const c of calls.values()) {
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
    const silent: number[] = [];
    let up = 0;
    for (const c of calls.values()) {
      sent += c.winSent;
      received += c.winReceived;
      if (c.acked && !c.ended) {
        up++;
        if (c.winReceived === 0) silent.push(c.index);
      }
    }
    return { sent, received, silentCalls: silent, callsUp: up, latency: latency.summary(), latencyHist: latency.histogram(), sendLag: sendLag.summary(), sendLagHist: sendLag.histogram(), other };
  },
  /** per-call totals, for the calls' end: who never received, who ended how */
  calls() {
    return [...calls.values()].map((c) => ({
      index: c.index,
      callId: c.callId,
      sent: c.sent,
      received: c.received,
      acked: c.acked,
      ended: c.ended,
      firstRxMs: c.firstRxAt ? c.firstRxAt - c.invitedAt : null,
      offer: c.offer,
      answer: c.answer,
    }));
  },
  /** ends every call still up locally (after the caller's BYE should have done it) */
  reset() {
    const leftover = [...calls.values()].filter((c) => !c.ended).map((c) => c.callId);
    for (const c of calls.values()) endCall(c, 'reset');
    calls.clear();
    nextIndex = 0;
    return { leftover };
  },
  log() {
    return log.splice(0);
  },
}, Number(process.env.MEDIA_GEN_MAX_SECONDS ?? 900));
