/**
 * The phone without its screen: a JsSIP user agent (SIP over WebSocket, RFC 7118) registered
 * with the gateway, and the call in progress. The UI listens to typed events and calls methods;
 * nothing here touches the DOM (except media streams, which belong to WebRTC).
 */
import { UA, WebSocketInterface } from 'jssip';
import type { EndEvent, HoldEvent, MediaStreamTypes, RTCSession, SDPEvent } from 'jssip/lib/RTCSession';
import type { IncomingResponse } from 'jssip/lib/SIPMessage';
import type { DisconnectEvent, RTCSessionEvent, UnRegisteredEvent } from 'jssip/lib/UA';
import { Emitter } from './emitter.js';
import { causeText, endedCall, incomingFailure, outgoingFailure, registrationFailure, type CallOutcome } from './messages.js';
import { accountDomain, splitUser, uriUser, type Settings } from './settings.js';

export const USER_AGENT = 'Gateway Softphone (JsSIP 3.13)';

/** No STUN/TURN: the gateway is ICE-lite with an address we can reach (its candidates say so). */
const PC_CONFIG: RTCConfiguration = { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'max-bundle' };
/** Stop gathering this long after the first candidate (the gateway is ICE-lite: host candidates do). */
const ICE_GATHERING_MS = 1000;
/** A call answered but whose audio is not connected after this long has failed. */
const MEDIA_CONNECT_TIMEOUT_MS = 20_000;
/** RFC 4733 events: tone length and gap (JsSIP's RTCDTMFSender path). */
const DTMF_OPTIONS = { transportType: 'RFC2833', duration: 160, interToneGap: 80 } as const;

// ---------------------------------------------------------------------------------------------
// registration

export type RegState = 'idle' | 'connecting' | 'registering' | 'registered' | 'offline' | 'failed';

export interface RegStatus {
  state: RegState;
  /** a few words for the status pill */
  text: string;
  /** a sentence when something is wrong (or was just repaired) */
  detail: string;
}

interface PhoneEvents extends Record<string, unknown[]> {
  registration: [RegStatus];
  /** a new call, either way (incoming ones ring until answered or rejected) */
  call: [Call];
  /** an incoming call we turned away because we were busy */
  missed: [Call];
}

export class Phone extends Emitter<PhoneEvents> {
  private ua: UA | null = null;
  private wsUri = '';
  private user = '';
  private domain_ = location.hostname;
  /** the WebSocket was up (or registered) and went down: the next registration is a recovery */
  private lost = false;
  private everConnected = false;
  status: RegStatus = { state: 'idle', text: 'Not registered', detail: '' };
  current: Call | null = null;

  get domain(): string {
    return this.domain_;
  }

  get connected(): boolean {
    return this.ua?.isConnected() ?? false;
  }

  get registered(): boolean {
    return this.status.state === 'registered';
  }

  /** Connects and registers with these settings (replacing any earlier user agent). */
  start(s: Settings): void {
    this.shutdown();
    const domain = accountDomain(s);
    const { user } = splitUser(s.user, domain);
    this.user = user;
    this.domain_ = domain;
    this.wsUri = s.wsUri.trim();
    this.lost = false;
    this.everConnected = false;
    const socket = new WebSocketInterface(this.wsUri);
    const ua = new UA({
      sockets: [socket],
      uri: `sip:${user}@${domain}`,
      authorization_user: user,
      password: s.password,
      display_name: s.displayName.trim() || undefined,
      register: true,
      register_expires: 300,
      session_timers: false,
      user_agent: USER_AGENT,
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    this.ua = ua;
    const mine = <A extends unknown[]>(fn: (...a: A) => void) => (...a: A): void => {
      if (this.ua === ua) fn(...a);
    };

    ua.on('connecting', mine(() => {
      if (this.lost) this.setStatus('offline', 'Reconnecting…', 'The connection to the server was lost. Reconnecting…');
      else if (!this.everConnected && this.status.state !== 'offline') this.setStatus('connecting', 'Connecting…', '');
    }));
    ua.on('connected', mine(() => {
      this.everConnected = true;
      this.setStatus('registering', 'Registering…', this.lost ? 'Connected again. Registering…' : '');
    }));
    ua.on('disconnected', mine((e: DisconnectEvent) => {
      if (this.everConnected) {
        this.lost = true;
        this.setStatus('offline', 'Connection lost', 'The connection to the server was lost. Reconnecting…');
      } else {
        const code = e.code ? ` (WebSocket close ${e.code})` : '';
        this.setStatus('offline', 'Server unreachable', `Cannot reach the server at ${this.wsUri}${code}. Retrying…`);
      }
    }));
    ua.on('registered', mine(() => {
      const recovered = this.lost;
      this.lost = false;
      const at = new Date().toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
      this.setStatus('registered', `Registered as ${this.user}`, recovered ? `The connection was lost and restored: registered again at ${at}.` : '');
    }));
    ua.on('registrationFailed', mine((e: UnRegisteredEvent) => {
      const res = e.response as IncomingResponse | null;
      const status = res ? res.status_code : null;
      const detail = registrationFailure(status, res?.reason_phrase ?? null, String(e.cause ?? ''));
      if (res) {
        // the server answered no: retrying with the same credentials would only fail again
        this.setStatus('failed', 'Registration failed', detail);
        this.shutdown(false);
      } else if (e.cause === 'Connection Error') {
        this.setStatus('offline', 'Server unreachable', detail);
      } else {
        this.setStatus('failed', 'Registration failed', detail);
      }
    }));
    ua.on('newRTCSession', mine((e: RTCSessionEvent) => {
      if (e.originator !== 'remote') return; // ours: see call()
      const call = new Call(e.session, 'incoming');
      if (this.current && !this.current.ended) {
        this.emit('missed', call);
        call.turnAway();
        return;
      }
      this.track(call);
    }));
    ua.start();
  }

  /** Unregisters and disconnects; resolves when the un-REGISTER is answered (or after 3 s). */
  async stop(): Promise<void> {
    const ua = this.ua;
    if (!ua) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3000);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      if (ua.isRegistered()) {
        ua.on('unregistered', done);
        ua.on('registrationFailed', done);
        ua.unregister();
      } else done();
    });
    this.shutdown();
  }

  /** Stops the user agent at once (JsSIP still sends the un-REGISTER and BYEs it owes). */
  private shutdown(resetStatus = true): void {
    const ua = this.ua;
    this.ua = null;
    if (ua) {
      try {
        ua.stop();
      } catch {
        // already stopped
      }
    }
    if (resetStatus) this.setStatus('idle', 'Not registered', '');
  }

  /** Calls `target` (a SIP URI) with `stream` as the microphone. */
  call(target: string, stream: MediaStream): Call {
    if (!this.ua) throw new Error('Register first.');
    if (!this.ua.isConnected()) throw new Error('Not connected to the server.');
    if (this.current && !this.current.ended) throw new Error('A call is already in progress.');
    const session = this.ua.call(target, {
      mediaStream: stream,
      pcConfig: PC_CONFIG,
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
    });
    const call = new Call(session, 'outgoing', target, stream);
    this.track(call);
    return call;
  }

  private track(call: Call): void {
    this.current = call;
    call.on('ended', () => {
      if (this.current === call) this.current = null;
    });
    this.emit('call', call);
  }

  private setStatus(state: RegState, text: string, detail: string): void {
    this.status = { state, text, detail };
    this.emit('registration', this.status);
  }
}

// ---------------------------------------------------------------------------------------------
// a call

/**
 * calling: INVITE sent; ringing: 180/183 received; incoming: ringing here; answering: we
 * answered, waiting for the ACK; active: answered (the timer runs); ended.
 */
export type CallPhase = 'calling' | 'ringing' | 'incoming' | 'answering' | 'active' | 'ended';

interface CallEvents extends Record<string, unknown[]> {
  change: [];
  ended: [CallOutcome];
}

let nextId = 1;

export class Call extends Emitter<CallEvents> {
  readonly id = `${Date.now().toString(36)}-${nextId++}`;
  readonly uri: string;
  readonly name: string;
  phase: CallPhase;
  muted = false;
  /** we put the call on hold */
  held = false;
  /** the other side put the call on hold */
  remoteHeld = false;
  /** 183 with SDP: the far end plays its own ringback */
  earlyMedia = false;
  readonly startedAt = Date.now();
  answeredAt: number | null = null;
  endedAt: number | null = null;
  outcome: CallOutcome | null = null;
  localStream: MediaStream | null;
  remoteStream: MediaStream | null = null;
  /** RTCPeerConnection.connectionState ('new' before there is one) */
  mediaState: RTCPeerConnectionState = 'new';
  /** the DTMF digits sent in this call */
  dtmfSent = '';
  /** the last SDP the other side sent (kept for diagnostics) */
  remoteSdp = '';
  private pc: RTCPeerConnection | null = null;
  private mediaTimer: ReturnType<typeof setTimeout> | null = null;
  private gatherTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly session: RTCSession,
    readonly direction: 'incoming' | 'outgoing',
    target?: string,
    stream: MediaStream | null = null,
  ) {
    super();
    this.localStream = stream;
    const identity = session.remote_identity;
    this.uri = target ?? identity.uri.toString();
    this.name = (direction === 'incoming' && identity.display_name) || uriUser(this.uri);
    this.phase = direction === 'incoming' ? 'incoming' : 'calling';
    this.listen();
  }

  get ended(): boolean {
    return this.phase === 'ended';
  }

  /** Seconds since the answer (0 before). */
  get duration(): number {
    if (this.answeredAt === null) return 0;
    return ((this.endedAt ?? Date.now()) - this.answeredAt) / 1000;
  }

  /** The peer connection, for getStats() when diagnosing. */
  get connection(): RTCPeerConnection | null {
    return this.pc;
  }

  answer(stream: MediaStream): void {
    if (this.phase !== 'incoming') return;
    this.localStream = stream;
    this.phase = 'answering';
    this.changed();
    this.session.answer({ mediaStream: stream, pcConfig: PC_CONFIG });
  }

  /** Declines an incoming call (603 Decline). */
  reject(): void {
    if (this.phase !== 'incoming') return;
    this.session.terminate({ status_code: 603, reason_phrase: 'Decline' });
  }

  /** 486 Busy Here for a call that arrived while another one was in progress. */
  turnAway(): void {
    this.session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
  }

  /** Hangs up: CANCEL before the answer, BYE after (or a decline if it is still ringing here). */
  hangup(): void {
    if (this.ended) return;
    if (this.phase === 'incoming') return this.reject();
    try {
      this.session.terminate();
    } catch {
      this.finish({ kind: 'failed', message: 'Call ended.' });
    }
  }

  setMuted(muted: boolean): void {
    if (this.ended) return;
    if (muted) this.session.mute({ audio: true });
    else this.session.unmute({ audio: true });
  }

  /** false when it cannot be done now (an offer/answer is already in progress). */
  setHeld(held: boolean): boolean {
    if (this.phase !== 'active') return false;
    return held ? this.session.hold() : this.session.unhold();
  }

  /** Sends one DTMF key as RFC 4733 events in the audio stream. */
  sendDtmf(key: string): void {
    if (this.phase !== 'active') throw new Error('Keys can be sent once the call is answered.');
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === 'audio');
    if (!sender?.dtmf || !sender.dtmf.canInsertDTMF) throw new Error('This call cannot carry keypad tones (no telephone-event negotiated).');
    this.session.sendDTMF(key, DTMF_OPTIONS as unknown as Parameters<RTCSession['sendDTMF']>[1]);
    this.dtmfSent += key;
    this.changed();
  }

  /** Switches the microphone mid-call (no renegotiation: replaceTrack). */
  async replaceMicrophone(stream: MediaStream): Promise<void> {
    const track = stream.getAudioTracks()[0];
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === 'audio' || s.track === null);
    if (!track || !sender) return;
    track.enabled = !(this.muted || this.held || this.remoteHeld);
    await sender.replaceTrack(track);
    for (const t of this.localStream?.getTracks() ?? []) t.stop();
    this.localStream = stream;
    this.changed();
  }

  // ---- JsSIP events

  private listen(): void {
    const s = this.session;
    if (s.connection) this.attach(s.connection);
    s.on('peerconnection', (e) => this.attach(e.peerconnection));
    s.on('icecandidate', (e) => {
      this.gatherTimer ??= setTimeout(() => e.ready(), ICE_GATHERING_MS);
    });
    s.on('sdp', (e: SDPEvent) => {
      if (e.originator === 'remote') this.remoteSdp = e.sdp;
    });
    s.on('progress', (e: unknown) => {
      const ev = e as { originator?: string; response?: IncomingResponse };
      if (this.direction !== 'outgoing' || ev.originator !== 'remote') return;
      const res = ev.response;
      if (res && res.status_code >= 180) {
        this.phase = 'ringing';
        if (res.body) this.earlyMedia = true;
        this.changed();
      }
    });
    s.on('accepted', () => {
      this.answeredAt ??= Date.now();
      this.phase = 'active';
      this.watchMedia();
      this.changed();
    });
    s.on('confirmed', () => {
      this.answeredAt ??= Date.now();
      if (this.phase !== 'active') {
        this.phase = 'active';
        this.watchMedia();
      }
      this.refreshRemote();
      this.changed();
    });
    s.on('hold', (e: HoldEvent) => this.onHold(e.originator, true));
    s.on('unhold', (e: HoldEvent) => this.onHold(e.originator, false));
    s.on('muted', (e: MediaStreamTypes) => {
      if (e.audio) this.muted = true;
      this.changed();
    });
    s.on('unmuted', (e: MediaStreamTypes) => {
      if (e.audio) this.muted = false;
      this.changed();
    });
    s.on('peerconnection:setremotedescriptionfailed', (err: unknown) => {
      console.error('softphone: the browser rejected the remote SDP:', err, '\n' + this.remoteSdp);
    });
    s.on('failed', (e: EndEvent) => this.onFailed(e));
    s.on('ended', (e: EndEvent) => this.finish(this.answeredOutcome(e)));
  }

  private attach(pc: RTCPeerConnection): void {
    if (this.pc === pc) return;
    this.pc = pc;
    pc.addEventListener('track', () => this.refreshRemote());
    pc.addEventListener('connectionstatechange', () => {
      this.mediaState = pc.connectionState;
      if (pc.connectionState === 'connected' && this.mediaTimer) {
        clearTimeout(this.mediaTimer);
        this.mediaTimer = null;
      }
      if (pc.connectionState === 'failed') this.mediaFailed();
      this.changed();
    });
    this.refreshRemote();
  }

  /** The remote audio as one stream (a new stream object only when the tracks change). */
  private refreshRemote(): void {
    const tracks = this.pc?.getReceivers().map((r) => r.track).filter((t) => t.kind === 'audio') ?? [];
    if (tracks.length === 0) return;
    const current = this.remoteStream?.getAudioTracks() ?? [];
    if (current.length === tracks.length && tracks.every((t) => current.includes(t))) return;
    this.remoteStream = new MediaStream(tracks);
    this.changed();
  }

  private watchMedia(): void {
    if (this.mediaTimer || this.pc?.connectionState === 'connected') return;
    this.mediaTimer = setTimeout(() => {
      this.mediaTimer = null;
      if (!this.ended && this.pc?.connectionState !== 'connected') this.mediaFailed();
    }, MEDIA_CONNECT_TIMEOUT_MS);
  }

  private mediaFailed(): void {
    if (this.ended || this.outcome) return;
    const pc = this.pc;
    console.error(`softphone: media failed (connectionState ${pc?.connectionState}, iceConnectionState ${pc?.iceConnectionState}); remote SDP:\n${this.remoteSdp}`);
    this.outcome = { kind: 'failed', message: causeText('Media Failed') };
    try {
      this.session.terminate();
    } catch {
      this.finish(this.outcome);
    }
  }

  private onHold(originator: string, on: boolean): void {
    if (originator === 'local') this.held = on;
    else this.remoteHeld = on;
    this.changed();
  }

  private onFailed(e: EndEvent): void {
    if (this.answeredAt !== null) return this.finish(this.answeredOutcome(e));
    if (this.direction === 'outgoing') {
      const res = e.originator === 'remote' ? (e.message as IncomingResponse | null) : null;
      const status = res && typeof res.status_code === 'number' ? res.status_code : null;
      return this.finish(outgoingFailure(status, e.cause));
    }
    this.finish(incomingFailure(e.originator, e.cause));
  }

  private answeredOutcome(e: EndEvent): CallOutcome {
    if (e.cause === 'RTP Timeout' && (this.pc?.iceConnectionState === 'failed' || this.pc?.connectionState === 'failed')) {
      return { kind: 'failed', message: causeText('Media Failed') };
    }
    return endedCall(e.originator, e.cause);
  }

  private finish(outcome: CallOutcome): void {
    if (this.ended) return;
    this.outcome ??= outcome;
    this.phase = 'ended';
    this.endedAt = Date.now();
    if (this.mediaTimer) clearTimeout(this.mediaTimer);
    if (this.gatherTimer) clearTimeout(this.gatherTimer);
    for (const t of this.localStream?.getTracks() ?? []) t.stop();
    this.changed();
    this.emit('ended', this.outcome);
  }

  private changed(): void {
    this.emit('change');
  }
}
