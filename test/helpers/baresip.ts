/**
 * A real desk phone for a test: Debian's baresip 1.0, configured in a temp dir, registered to
 * the gateway over UDP, driven over its ctrl_tcp socket (netstring-framed JSON), sending a WAV
 * tone through `aufile` and recording what it receives through `sndfile`.
 *
 *   const bob = await BaresipPhone.start({ user: 'bob', gateway: gw, toneHz: 880, autoAnswer: true });
 *   const alice = await BaresipPhone.start({ user: 'alice', gateway: gw, toneHz: 440 });  // registered
 *   await alice.dial(`sip:bob@${alice.domain}`);    // resolves on CALL_ESTABLISHED
 *   await sleep(2000);
 *   await alice.hangup();                           // resolves on CALL_CLOSED
 *   await bob.waitEvent('CALL_CLOSED');
 *   assert.ok(bob.heardTone(440), bob.describeRecording());   // frequency analysis of bob's -dec.wav
 *   await Promise.all([alice.close(), bob.close()]);
 *
 * By default the account registers with the gateway as its outbound proxy (`outbound=`), like
 * a desk phone given an "outbound proxy": its initial INVITE then carries a pre-loaded
 * `Route: <sip:gateway;lr>`. `outbound: false` addresses the gateway by Request-URI instead
 * (AOR domain = the gateway's 127.0.0.1:port).
 *
 * What baresip 1.0 does, as used here:
 * - `-f DIR` reads DIR/config and DIR/accounts; `-t SECONDS` makes it quit by itself (the
 *   bound on its life, besides the kill in close()); `-v` verbose log, `-s` SIP trace (both go
 *   to stdout, kept in `log`).
 * - ctrl_tcp (`ctrl_tcp_listen`): each message is a netstring `<len>:<json>,`. A command is
 *   `{"command":"dial","params":"sip:bob@host","token":"t1"}`, its reply
 *   `{"response":true,"ok":true,"data":"...","token":"t1"}`; events come unasked as
 *   `{"event":true,"type":"CALL_ESTABLISHED","class":"call","accountaor":...,"peeruri":...}`
 *   (REGISTER_OK, CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED...). Commands are
 *   the menu module's long names: dial, accept, hangup, reginfo, listcalls, quit.
 * - `aufile` as audio source: the WAV must have the ausrc sample rate and channel count; at
 *   its end the source stops, so the tone written here outlasts the phone's life.
 * - `sndfile` (an audio filter) writes `<snd_path>/dump-<YYYY-MM-DD-HH-MM-SS>-enc.wav` (what
 *   it sends) and `...-dec.wav` (what it received, decoded) per call, 16-bit PCM at the
 *   codec's rate; the header's sizes are final once the call's audio stream is closed. Two
 *   calls started in the same second share a name: take recordings between calls.
 * - `answermode=auto` on the account answers incoming calls at once.
 *
 * Every wait is bounded (default 10 s); close() stops the process by PID (SIGTERM, then
 * SIGKILL) and removes the temp dir (kept when BARESIP_KEEP=1; BARESIP_TRACE=1 adds `-s -v`
 * and prints the log on close).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { dominantFrequency, detectTone, ToneGenerator } from '../../server/audio/tone.js';
import { encodeWav, parseWav, type WavAudio } from '../../server/audio/wav.js';
import type { Gateway } from '../../server/gateway.js';
import { within as withinOr } from './latch.js';

export const BARESIP_BIN = 'baresip';
export const BARESIP_MODULES = '/usr/lib/baresip/modules';
/** RTP ports baresip phones use by default: outside every gateway media range the tests set. */
export const DEFAULT_RTP_PORTS: [number, number] = [21000, 21199];
const DEFAULT_TIMEOUT_MS = 10_000;

export type BaresipCodec = 'PCMU' | 'PCMA' | 'G722';

export interface BaresipOptions {
  /** the user part of the AOR; also the digest username */
  user: string;
  /** digest password (default `pw-<user>`, the test gateway's users) */
  password?: string;
  /**
   * the AOR's domain (default 127.0.0.1 with `outbound`, else the gateway's host:port).
   * Dial other users at `sip:<user>@<phone.domain>`.
   */
  domain?: string;
  /**
   * send everything through the gateway as outbound proxy (account `outbound=`: the initial
   * INVITE then carries a pre-loaded `Route: <sip:gateway;lr>`, as desk phones configured
   * with an outbound proxy do). Default true. false: no outbound proxy; the AOR's domain is
   * the gateway's host:port, so requests go there by their Request-URI.
   */
  outbound?: boolean;
  /**
   * where to register and send everything (the outbound proxy): a gateway (its UDP port on
   * 127.0.0.1; registration is then also checked in its location store) or host:port
   */
  gateway: Gateway | { host: string; port: number };
  /** the tone this phone sends, Hz (default 440); null sends silence */
  toneHz?: number | null;
  /** tone peak amplitude (default 8000, about -12 dBFS) */
  toneAmplitude?: number;
  /** answer incoming calls at once (account `answermode=auto`; default false: call answer()) */
  autoAnswer?: boolean;
  /** codecs offered/accepted, in order (default PCMU) */
  codecs?: BaresipCodec[];
  /** RTP/RTCP port range (default 21000-21199; baresip retries another port when one is taken) */
  rtpPorts?: [number, number];
  /** seconds before baresip quits by itself (`-t`, default 55) */
  lifetimeS?: number;
  /** REGISTER interval in seconds (default 600) */
  regint?: number;
  /** register at start and wait for it (default true) */
  register?: boolean;
  /** verbose log and SIP trace (`-v -s`; default: env BARESIP_TRACE) */
  trace?: boolean;
  /** default for every wait, ms (default 10 s) */
  timeoutMs?: number;
  /** extra lines for the config file */
  extraConfig?: string[];
  /** extra `;param=value` for the account line */
  extraAccountParams?: string;
}

/** An event from ctrl_tcp. */
export interface BaresipEvent {
  event: true;
  type: string;
  class?: string;
  accountaor?: string;
  direction?: string;
  peeruri?: string;
  peerdisplayname?: string;
  id?: string;
  param?: string;
  /** when it arrived (Date.now()) */
  at: number;
  [k: string]: unknown;
}

export interface BaresipResponse {
  ok: boolean;
  data: string;
}

export class BaresipTimeoutError extends Error {
  override name = 'BaresipTimeoutError';
}

/** What a phone received in one call (`dump-...-dec.wav`), and what it sent (`-enc.wav`). */
export interface BaresipRecording {
  file: string;
  kind: 'dec' | 'enc';
  audio: WavAudio;
}

// phones still running when the process exits are killed (a test that threw before close())
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

function listenTcp(port: number): Promise<net.Server | null> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

function bindUdp(port: number): Promise<dgram.Socket | null> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', () => {
      try {
        sock.close();
      } catch {
        /* not bound */
      }
      resolve(null);
    });
    sock.bind(port, '127.0.0.1', () => resolve(sock));
  });
}

/**
 * A SIP port for baresip, free a moment ago: baresip 1.0 binds UDP and TCP on the
 * `sip_listen` port and TLS (TCP) on the next one, and exits (code 98) if any is taken.
 * Also a free TCP port for ctrl_tcp. The sockets are held together while checking.
 */
async function freePorts(): Promise<{ sip: number; ctrl: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const held: { close(cb?: () => void): unknown }[] = [];
    try {
      const tcp = await listenTcp(0);
      if (!tcp) continue;
      held.push(tcp);
      const sip = (tcp.address() as net.AddressInfo).port;
      if (sip >= 65535) continue;
      const udp = await bindUdp(sip);
      if (!udp) continue;
      held.push(udp);
      const tls = await listenTcp(sip + 1);
      if (!tls) continue;
      held.push(tls);
      const ctrlSrv = await listenTcp(0);
      if (!ctrlSrv) continue;
      held.push(ctrlSrv);
      return { sip, ctrl: (ctrlSrv.address() as net.AddressInfo).port };
    } finally {
      await Promise.all(held.map((h) => new Promise<void>((r) => {
        try {
          h.close(() => r());
        } catch {
          r();
        }
      })));
    }
  }
  throw new Error('no free ports for baresip on 127.0.0.1');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Splits netstrings (`<len>:<payload>,`) off the front of `buf`; returns them and the rest. */
export function readNetstrings(buf: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let off = 0;
  for (;;) {
    const colon = buf.indexOf(0x3a, off);
    if (colon < 0) break;
    const len = Number(buf.subarray(off, colon).toString('latin1'));
    if (!Number.isInteger(len) || len < 0) throw new Error(`ctrl_tcp: bad netstring length ${JSON.stringify(buf.subarray(off, colon).toString('latin1'))}`);
    const end = colon + 1 + len;
    if (buf.length < end + 1) break;
    messages.push(buf.subarray(colon + 1, end));
    off = end + 1; // the trailing ','
  }
  return { messages, rest: buf.subarray(off) };
}

export function netstring(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}:`, 'latin1'), body, Buffer.from(',', 'latin1')]);
}

type EventWaiter = { pred: (e: BaresipEvent) => boolean; done: (e: BaresipEvent) => void };

export class BaresipPhone {
  /** the temp dir: config, accounts, tone.wav, rec/ (recordings), baresip.log */
  readonly dir: string;
  readonly recDir: string;
  readonly user: string;
  /** the AOR's domain: dial `sip:<user>@${domain}` */
  readonly domain: string;
  readonly aor: string;
  readonly sipPort: number;
  readonly ctrlPort: number;
  readonly timeoutMs: number;
  /** every ctrl_tcp event, in order */
  readonly events: BaresipEvent[] = [];
  private readonly opts: BaresipOptions;
  private child: ChildProcess | null = null;
  private exit: Promise<number | null> | null = null;
  private exitCode: number | null | undefined = undefined;
  private logText = '';
  private ctrl: net.Socket | null = null;
  private rx = Buffer.alloc(0);
  private tokenSeq = 0;
  private readonly pending = new Map<string, (r: BaresipResponse) => void>();
  private readonly waiters = new Set<EventWaiter>();
  private closing: Promise<void> | null = null;

  /** Writes the config, starts baresip, connects to ctrl_tcp and (by default) waits until registered. */
  static async start(opts: BaresipOptions): Promise<BaresipPhone> {
    // a port found free may be taken before baresip binds it (it then exits at once): retry
    for (let attempt = 1; ; attempt++) {
      const ports = await freePorts();
      const phone = new BaresipPhone(opts, ports.sip, ports.ctrl);
      try {
        phone.writeFiles();
        phone.spawn();
        await phone.connectCtrl();
        if (opts.register ?? true) await phone.waitRegistered();
        return phone;
      } catch (e) {
        const log = phone.log;
        await phone.close();
        if (attempt < 3 && /Address already in use/.test(log)) continue;
        if (e instanceof Error) e.message += `\n--- baresip ${opts.user} log (tail) ---\n${log.slice(-4000)}`;
        throw e;
      }
    }
  }

  private constructor(opts: BaresipOptions, sipPort: number, ctrlPort: number) {
    this.opts = opts;
    this.user = opts.user;
    const gw = gatewayAddr(opts.gateway);
    this.domain = opts.domain ?? ((opts.outbound ?? true) ? gw.host : `${gw.host}:${gw.port}`);
    this.aor = `sip:${opts.user}@${this.domain}`;
    this.sipPort = sipPort;
    this.ctrlPort = ctrlPort;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `baresip-${opts.user}-`));
    this.recDir = path.join(this.dir, 'rec');
  }

  /** pid of the baresip process (undefined once it has exited) */
  get pid(): number | undefined {
    return this.exitCode === undefined ? this.child?.pid : undefined;
  }

  /** stdout + stderr of baresip so far */
  get log(): string {
    return this.logText;
  }

  get running(): boolean {
    return this.child !== null && this.exitCode === undefined;
  }

  private writeFiles(): void {
    const o = this.opts;
    const rate = 8000;
    fs.mkdirSync(this.recDir);
    // the tone: one continuous sine, longer than baresip lives (aufile stops at the end)
    const lifetime = o.lifetimeS ?? 55;
    const tonePath = path.join(this.dir, 'tone.wav');
    const gen = new ToneGenerator(o.toneHz ?? 0, rate, { amplitude: o.toneHz === null ? 0 : (o.toneAmplitude ?? 8000) });
    const samples = new Int16Array(rate * (lifetime + 5));
    if (o.toneHz !== null) gen.next(samples);
    fs.writeFileSync(tonePath, encodeWav(samples, rate));

    const codecs = o.codecs ?? ['PCMU'];
    const [minRtp, maxRtp] = o.rtpPorts ?? DEFAULT_RTP_PORTS;
    const modules = ['g711.so', ...(codecs.includes('G722') ? ['g722.so'] : []), 'aufile.so', 'aubridge.so', 'sndfile.so'];
    const config = [
      `# baresip desk phone ${o.user} for a gateway test (test/helpers/baresip.ts)`,
      'poll_method\t\tepoll',
      `sip_listen\t\t127.0.0.1:${this.sipPort}`,
      'net_interface\t\t127.0.0.1',
      'call_local_timeout\t30',
      'call_max_calls\t\t4',
      // no sound card: aubridge is a dummy player; the source is the tone
      `audio_player\t\taubridge,${o.user}-play`,
      `audio_source\t\taufile,${tonePath}`,
      `audio_alert\t\taubridge,${o.user}-alert`,
      `ausrc_srate\t\t${rate}`,
      `auplay_srate\t\t${rate}`,
      'ausrc_channels\t\t1',
      'auplay_channels\t\t1',
      'audio_level\t\tno',
      `snd_path\t\t${this.recDir}`,
      `rtp_ports\t\t${minRtp}-${maxRtp}`,
      'rtp_bandwidth\t\t128-512',
      'rtcp_mux\t\tno',
      'jitter_buffer_delay\t5-10',
      'rtp_stats\t\tyes',
      'rtp_timeout\t\t0',
      `module_path\t\t${BARESIP_MODULES}`,
      ...modules.map((m) => `module\t\t\t${m}`),
      'module_app\t\taccount.so',
      'module_app\t\tmenu.so',
      'module_app\t\tctrl_tcp.so',
      `ctrl_tcp_listen\t\t127.0.0.1:${this.ctrlPort}`,
      ...(o.extraConfig ?? []),
      '',
    ].join('\n');
    fs.writeFileSync(path.join(this.dir, 'config'), config);

    const gw = gatewayAddr(o.gateway);
    const params = [
      `auth_pass=${o.password ?? `pw-${o.user}`}`,
      ...((o.outbound ?? true) ? [`outbound="sip:${gw.host}:${gw.port};transport=udp"`] : []),
      `regint=${o.register === false ? 0 : (o.regint ?? 600)}`,
      `audio_codecs=${codecs.join(',')}`,
      'ptime=20',
      ...(o.autoAnswer ? ['answermode=auto'] : []),
    ];
    const account = `<${this.aor}>;${params.join(';')}${o.extraAccountParams ?? ''}\n`;
    fs.writeFileSync(path.join(this.dir, 'accounts'), account);
  }

  private spawn(): void {
    const trace = this.opts.trace ?? !!process.env.BARESIP_TRACE;
    const args = ['-f', this.dir, '-t', String(this.opts.lifetimeS ?? 55), ...(trace ? ['-v', '-s'] : [])];
    const child = spawn(BARESIP_BIN, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    const append = (d: Buffer): void => {
      this.logText += d.toString('utf8');
      if (this.logText.length > 2_000_000) this.logText = this.logText.slice(-1_000_000);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    this.exit = new Promise((resolve) => {
      child.once('error', (e) => {
        append(Buffer.from(`spawn error: ${e.message}\n`));
        this.exitCode = null;
        live.delete(child);
        resolve(null);
      });
      child.once('exit', (code) => {
        this.exitCode = code;
        live.delete(child);
        resolve(code);
      });
    });
  }

  /** Connects to ctrl_tcp, retrying while baresip starts up. */
  private async connectCtrl(): Promise<void> {
    const end = Date.now() + this.timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`baresip ${this.user} exited (code ${String(this.exitCode)}) before ctrl_tcp was up`);
      const sock = await new Promise<net.Socket | null>((resolve) => {
        const s = net.connect(this.ctrlPort, '127.0.0.1');
        s.once('connect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', () => {
          s.destroy();
          resolve(null);
        });
      });
      if (sock) {
        this.ctrl = sock;
        sock.on('data', (d: Buffer) => this.onCtrlData(d));
        sock.on('error', () => undefined);
        sock.on('close', () => {
          if (this.ctrl === sock) this.ctrl = null;
        });
        return;
      }
      if (Date.now() > end) throw new BaresipTimeoutError(`baresip ${this.user}: ctrl_tcp 127.0.0.1:${this.ctrlPort} not up after ${this.timeoutMs} ms`);
      await sleep(50);
    }
  }

  private onCtrlData(d: Buffer): void {
    this.rx = Buffer.concat([this.rx, d]);
    let parsed: { messages: Buffer[]; rest: Buffer };
    try {
      parsed = readNetstrings(this.rx);
    } catch (e) {
      this.logText += `\n[test helper] ${(e as Error).message}\n`;
      this.rx = Buffer.alloc(0);
      return;
    }
    this.rx = Buffer.from(parsed.rest);
    for (const m of parsed.messages) {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(m.toString('utf8')) as Record<string, unknown>;
      } catch {
        this.logText += `\n[test helper] ctrl_tcp: not JSON: ${m.toString('utf8').slice(0, 200)}\n`;
        continue;
      }
      if (msg.response) {
        const token = typeof msg.token === 'string' ? msg.token : '';
        const done = this.pending.get(token);
        if (done) {
          this.pending.delete(token);
          done({ ok: msg.ok !== false, data: typeof msg.data === 'string' ? msg.data : '' });
        }
      } else if (msg.event) {
        const ev = { ...msg, at: Date.now() } as BaresipEvent;
        this.events.push(ev);
        for (const w of [...this.waiters]) {
          if (w.pred(ev)) {
            this.waiters.delete(w);
            w.done(ev);
          }
        }
      }
    }
  }

  /** Sends a ctrl_tcp command (menu long name: dial, accept, hangup, reginfo, listcalls...) and waits for its reply. */
  async command(command: string, params = '', timeoutMs = this.timeoutMs): Promise<BaresipResponse> {
    const sock = this.ctrl;
    if (!sock) throw new Error(`baresip ${this.user}: ctrl_tcp not connected`);
    const token = `t${++this.tokenSeq}`;
    const p = new Promise<BaresipResponse>((resolve) => this.pending.set(token, resolve));
    sock.write(netstring(JSON.stringify({ command, params, token })));
    try {
      return await within(p, timeoutMs, `baresip ${this.user}: reply to ${command} ${params}`);
    } finally {
      this.pending.delete(token);
    }
  }

  /**
   * The first event of `type` ('*': any) matching `pred` among those from index `since` (default:
   * only events still to come).
   */
  waitEvent(type: string, opts: { since?: number; timeoutMs?: number; pred?: (e: BaresipEvent) => boolean } = {}): Promise<BaresipEvent> {
    const pred = (e: BaresipEvent): boolean => (type === '*' || e.type === type) && (opts.pred?.(e) ?? true);
    const past = this.events.slice(opts.since ?? this.events.length).find(pred);
    if (past) return Promise.resolve(past);
    const waiter: EventWaiter = { pred, done: () => undefined };
    const p = new Promise<BaresipEvent>((resolve) => {
      waiter.done = resolve;
      this.waiters.add(waiter);
    });
    const seen = this.events.map((e) => e.type).join(', ') || 'none';
    return within(p, opts.timeoutMs ?? this.timeoutMs, `baresip ${this.user}: event ${type} (events so far: ${seen})`).finally(() => this.waiters.delete(waiter));
  }

  /**
   * Resolves once the phone is registered: its binding is in the gateway's location store
   * (when `gateway` is a Gateway), or else a REGISTER_OK event came / `reginfo` says OK.
   */
  async waitRegistered(timeoutMs = this.timeoutMs): Promise<void> {
    const g = this.opts.gateway;
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`baresip ${this.user} exited (code ${String(this.exitCode)}) before registering`);
      if ('ports' in g) {
        const bindings = await g.registrar.store.get(this.user);
        if (bindings.some((b) => b.received.transport === 'udp' && b.received.port === this.sipPort)) return;
      } else if (this.events.some((e) => e.type === 'REGISTER_OK')) {
        return;
      } else if (/\bOK\b/.test(stripAnsi((await this.command('reginfo', '', Math.max(100, end - Date.now()))).data))) {
        return;
      }
      if (this.events.some((e) => e.type === 'REGISTER_FAIL')) {
        const fail = this.events.find((e) => e.type === 'REGISTER_FAIL')!;
        throw new Error(`baresip ${this.user}: registration failed: ${fail.param ?? ''}`);
      }
      if (Date.now() > end) throw new BaresipTimeoutError(`baresip ${this.user}: not registered after ${timeoutMs} ms (events: ${this.events.map((e) => `${e.type} ${e.param ?? ''}`).join(', ') || 'none'})`);
      await sleep(50);
    }
  }

  /**
   * Dials `uri` and resolves on CALL_ESTABLISHED (rejects on CALL_CLOSED first, with its
   * reason, or after the timeout). `wait: false` returns once the command was accepted.
   */
  async dial(uri: string, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<BaresipEvent | null> {
    const since = this.events.length;
    const r = await this.command('dial', uri);
    if (!r.ok) throw new Error(`baresip ${this.user}: dial ${uri} refused: ${r.data}`);
    if (opts.wait === false) return null;
    return this.establishedOrClosed(since, opts.timeoutMs, `dial ${uri}`);
  }

  /** Waits for an incoming call (CALL_INCOMING, from index `since`: default only new ones). */
  waitIncoming(opts: { since?: number; timeoutMs?: number } = {}): Promise<BaresipEvent> {
    return this.waitEvent('CALL_INCOMING', opts);
  }

  /** Answers the ringing call (`accept`) and resolves on CALL_ESTABLISHED. */
  async answer(opts: { timeoutMs?: number } = {}): Promise<BaresipEvent> {
    const since = this.events.length;
    const r = await this.command('accept');
    if (!r.ok) throw new Error(`baresip ${this.user}: accept refused: ${r.data}`);
    return this.establishedOrClosed(since, opts.timeoutMs, 'answer');
  }

  /** Hangs up the current call and resolves on CALL_CLOSED (its audio files are then complete). */
  async hangup(opts: { timeoutMs?: number } = {}): Promise<BaresipEvent> {
    const since = this.events.length;
    const r = await this.command('hangup');
    if (!r.ok) throw new Error(`baresip ${this.user}: hangup refused: ${r.data}`);
    return this.waitEvent('CALL_CLOSED', { since, timeoutMs: opts.timeoutMs ?? this.timeoutMs });
  }

  private async establishedOrClosed(since: number, timeoutMs: number | undefined, what: string): Promise<BaresipEvent> {
    const ev = await this.waitEvent('*', {
      since,
      timeoutMs: timeoutMs ?? this.timeoutMs,
      pred: (e) => e.type === 'CALL_ESTABLISHED' || e.type === 'CALL_CLOSED',
    }).catch((e: unknown) => {
      throw e instanceof BaresipTimeoutError || (e instanceof Error && e.name === 'TimeoutError')
        ? new BaresipTimeoutError(`baresip ${this.user}: ${what}: no CALL_ESTABLISHED (events: ${this.events.slice(since).map((x) => `${x.type} ${x.param ?? ''}`).join(', ') || 'none'})`)
        : e;
    });
    if (ev.type === 'CALL_CLOSED') throw new Error(`baresip ${this.user}: ${what}: call closed: ${ev.param ?? ''}`);
    return ev;
  }

  /** The recordings sndfile wrote (full paths), oldest first. */
  recordingFiles(kind: 'dec' | 'enc' = 'dec'): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.recDir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.endsWith(`-${kind}.wav`))
      .sort()
      .map((n) => path.join(this.recDir, n));
  }

  /** The newest recording of `kind` (default 'dec': what the phone received), or null. */
  recording(kind: 'dec' | 'enc' = 'dec'): BaresipRecording | null {
    const file = this.recordingFiles(kind).at(-1);
    if (!file) return null;
    return { file, kind, audio: parseWav(fs.readFileSync(file)) };
  }

  /**
   * Whether the newest `-dec.wav` (what the phone received in its last call) holds a tone at
   * `freq` (± toleranceHz) making at least half of its power (tone.ts detectTone).
   */
  heardTone(freq: number, toleranceHz = 15): boolean {
    const rec = this.recording('dec');
    if (!rec) return false;
    return detectTone(mono(rec.audio), rec.audio.sampleRate, freq, toleranceHz);
  }

  /** A line for assertion messages: file, duration, dominant frequency, RMS of the newest recording. */
  describeRecording(kind: 'dec' | 'enc' = 'dec'): string {
    const files = this.recordingFiles(kind);
    if (!files.length) {
      let all: string[] = [];
      try {
        all = fs.readdirSync(this.recDir);
      } catch {
        /* none */
      }
      return `${this.user}: no *-${kind}.wav in ${this.recDir} (files: ${all.join(', ') || 'none'})`;
    }
    const rec = this.recording(kind)!;
    const s = mono(rec.audio);
    let sq = 0;
    for (const v of s) sq += v * v;
    const rms = s.length ? Math.sqrt(sq / s.length) : 0;
    const dom = s.length >= 256 ? dominantFrequency(s, rec.audio.sampleRate).toFixed(0) : '-';
    return `${this.user} ${path.basename(rec.file)}: ${(s.length / rec.audio.sampleRate).toFixed(2)} s at ${rec.audio.sampleRate} Hz, dominant ${dom} Hz, RMS ${rms.toFixed(0)}`;
  }

  /**
   * Stops baresip by PID (SIGTERM: it un-REGISTERs if it can; SIGKILL after `graceMs`, default
   * 2 s), closes ctrl_tcp and removes the temp dir. Idempotent; never rejects.
   */
  close(opts: { graceMs?: number } = {}): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      this.ctrl?.destroy();
      this.ctrl = null;
      const child = this.child;
      if (child && this.exitCode === undefined && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        const exited = await within(this.exit!, opts.graceMs ?? 2000, 'exit').then(() => true, () => false);
        if (!exited && this.exitCode === undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
          await within(this.exit!, 2000, 'exit after SIGKILL').catch(() => undefined);
        }
      }
      if (process.env.BARESIP_TRACE) process.stderr.write(`--- baresip ${this.user} log ---\n${this.logText}\n`);
      if (!process.env.BARESIP_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
      else fs.writeFileSync(path.join(this.dir, 'baresip.log'), this.logText);
    })();
    return this.closing;
  }
}

function stripAnsi(s: string): string {
  return s.replace(/\x1b?\[[0-9;]*m/g, '');
}

function gatewayAddr(g: BaresipOptions['gateway']): { host: string; port: number } {
  if ('ports' in g) {
    if (!g.ports.udp) throw new Error('the gateway has no UDP transport');
    return { host: '127.0.0.1', port: g.ports.udp };
  }
  return g;
}

function mono(a: WavAudio): Int16Array {
  if (a.channels === 1) return a.samples;
  const n = Math.floor(a.samples.length / a.channels);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = a.samples[i * a.channels]!;
  return out;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withinOr(p, ms, what, (m) => new BaresipTimeoutError(m));
}
