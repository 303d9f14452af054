/**
 * The softphone's screen: binds the static markup of index.html to the Phone (JsSIP), the
 * AudioEngine (ring tones, meters) and the call history. Driven like a phone: fill in the
 * account, register, dial, answer; everything the user needs to know is written on screen
 * (status texts, aria attributes), which is also what the end-to-end tests read.
 */
import './styles.css';
import { AudioEngine, type LevelMeter } from './audio.js';
import { canChooseSpeaker, listDevices, MicrophoneError, openMicrophone, type DeviceChoice } from './devices.js';
import { CallHistory, when, type HistoryEntry } from './history.js';
import { formatDuration } from './messages.js';
import { Phone, type Call, type RegStatus } from './phone.js';
import { dialTarget, loadSettings, saveSettings, uriUser, validateSettings, type Settings } from './settings.js';

const DIAL_KEYS = new Set(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#']);

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`softphone: #${id} is missing from index.html`);
  return el as T;
}

function initial(name: string): string {
  const c = name.trim().replace(/^sips?:/i, '').charAt(0);
  return c ? c.toUpperCase() : '?';
}

class App {
  private readonly el = {
    main: $('main'),
    boot: $('boot'),
    notice: $('notice'),
    regStatus: $('reg-status'),
    regText: $('reg-text'),
    accountToggle: $<HTMLButtonElement>('account-toggle'),
    account: $('account'),
    form: $<HTMLFormElement>('account-form'),
    displayName: $<HTMLInputElement>('display-name'),
    user: $<HTMLInputElement>('sip-user'),
    password: $<HTMLInputElement>('sip-password'),
    wsUri: $<HTMLInputElement>('ws-uri'),
    remember: $<HTMLInputElement>('remember-password'),
    microphone: $<HTMLSelectElement>('microphone'),
    speaker: $<HTMLSelectElement>('speaker'),
    speakerField: $('speaker-field'),
    accountError: $('account-error'),
    registerBtn: $<HTMLButtonElement>('register-btn'),
    unregisterBtn: $<HTMLButtonElement>('unregister-btn'),
    incoming: $('incoming'),
    incomingAvatar: $('incoming-avatar'),
    incomingFrom: $('incoming-from'),
    incomingUri: $('incoming-uri'),
    answerBtn: $<HTMLButtonElement>('answer-btn'),
    rejectBtn: $<HTMLButtonElement>('reject-btn'),
    callPanel: $('call-panel'),
    callAvatar: $('call-avatar'),
    callPeer: $('call-peer'),
    callUri: $('call-uri'),
    callState: $('call-state'),
    callTimer: $('call-timer'),
    micMeter: $('mic-meter'),
    spkMeter: $('spk-meter'),
    muteBtn: $<HTMLButtonElement>('mute-btn'),
    holdBtn: $<HTMLButtonElement>('hold-btn'),
    dtmfSent: $('dtmf-sent'),
    dialForm: $<HTMLFormElement>('dial-form'),
    dialInput: $<HTMLInputElement>('dial-input'),
    backspaceBtn: $<HTMLButtonElement>('backspace-btn'),
    dialpad: $('dialpad'),
    callBtn: $<HTMLButtonElement>('call-btn'),
    hangupBtn: $<HTMLButtonElement>('hangup-btn'),
    callMessage: $('call-message'),
    historyList: $('history-list'),
    historyEmpty: $('history-empty'),
    clearHistory: $<HTMLButtonElement>('clear-history'),
    remoteAudio: $<HTMLAudioElement>('remote-audio'),
  };

  private settings: Settings = loadSettings();
  private readonly phone = new Phone();
  private readonly audio = new AudioEngine();
  private readonly history = new CallHistory();
  private call: Call | null = null;
  private tone: 'ring' | 'ringback' | null = null;
  private meters: { mic: LevelMeter | null; spk: LevelMeter | null; micStream: MediaStream | null; spkStream: MediaStream | null } = { mic: null, spk: null, micStream: null, spkStream: null };
  private meterFrame = 0;
  private meterAriaAt = 0;
  private clock: ReturnType<typeof setInterval> | null = null;
  /** the account panel was opened by the user (not by us, for a first registration) */
  private accountPinned = false;
  private startingCall = false;

  start(): void {
    this.fillForm();
    this.bind();
    this.el.speakerField.hidden = !canChooseSpeaker;
    this.el.boot.hidden = true;
    this.el.main.hidden = false;
    this.renderRegistration(this.phone.status);
    this.renderCall();
    this.renderHistory();
    void this.refreshDevices();
    const canAutoRegister = this.settings.autoRegister && this.settings.user && this.settings.password && !validateSettings(this.settings);
    this.showAccount(!canAutoRegister);
    if (canAutoRegister) this.phone.start(this.settings);
    else (this.settings.user ? this.el.password : this.el.user).focus();
  }

  // ---- wiring

  private bind(): void {
    const el = this.el;
    // any gesture may unlock audio, so that a later incoming call can ring
    for (const type of ['pointerdown', 'keydown'] as const) document.addEventListener(type, () => this.audio.unlock(), { capture: true });

    el.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.register();
    });
    el.unregisterBtn.addEventListener('click', () => void this.unregister());
    el.accountToggle.addEventListener('click', () => {
      const open = el.account.hidden;
      this.accountPinned = open;
      this.showAccount(open);
      if (open) el.user.focus();
    });
    el.microphone.addEventListener('change', () => void this.chooseMicrophone(el.microphone.value));
    el.speaker.addEventListener('change', () => void this.chooseSpeaker(el.speaker.value));
    navigator.mediaDevices?.addEventListener?.('devicechange', () => void this.refreshDevices());

    el.dialForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.startCall();
    });
    el.dialpad.addEventListener('click', (e) => {
      const key = (e.target as HTMLElement).closest<HTMLButtonElement>('button[data-key]')?.dataset.key;
      if (key) this.pressKey(key);
    });
    el.backspaceBtn.addEventListener('click', () => {
      el.dialInput.value = el.dialInput.value.slice(0, -1);
      el.dialInput.focus();
    });
    el.callBtn.addEventListener('click', () => void this.startCall());
    el.hangupBtn.addEventListener('click', () => this.call?.hangup());
    el.answerBtn.addEventListener('click', () => void this.answer());
    el.rejectBtn.addEventListener('click', () => this.call?.reject());
    el.muteBtn.addEventListener('click', () => this.call?.setMuted(!this.call.muted));
    el.holdBtn.addEventListener('click', () => {
      const c = this.call;
      if (c && !c.setHeld(!c.held)) this.say('Hold is not possible right now, try again in a moment.', 'error');
    });
    el.clearHistory.addEventListener('click', () => this.history.clear());
    el.historyList.addEventListener('click', (e) => {
      const uri = (e.target as HTMLElement).closest<HTMLButtonElement>('button[data-uri]')?.dataset.uri;
      if (!uri) return;
      el.dialInput.value = uri;
      void this.startCall();
    });

    document.addEventListener('keydown', (e) => this.onKey(e));
    window.addEventListener('pagehide', () => void this.phone.stop());

    this.phone.on('registration', (s) => this.onRegistration(s));
    this.phone.on('call', (c) => this.onCall(c));
    this.phone.on('missed', (c) => c.on('ended', (o) => this.record(c, o.kind === 'declined' ? 'missed' : o.kind, 'Missed while on another call.')));
    this.history.onChange(() => this.renderHistory());
  }

  private onKey(e: KeyboardEvent): void {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target as HTMLElement | null;
    const inDial = t === this.el.dialInput;
    const inOtherField = !inDial && !!t && (t.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(t.tagName));
    const c = this.call;
    if (e.key === 'Escape') {
      if (c && !c.ended) {
        e.preventDefault();
        c.hangup();
      }
      return;
    }
    if (inOtherField) return;
    if (DIAL_KEYS.has(e.key)) {
      if (c && c.phase === 'active') {
        e.preventDefault();
        this.pressKey(e.key);
      } else if (!inDial && (!c || c.ended)) {
        e.preventDefault();
        this.pressKey(e.key);
      }
      return;
    }
    if (e.key === 'Enter' && !inDial) {
      if (t && t.tagName === 'BUTTON') return; // the button's own action
      if (c?.phase === 'incoming') void this.answer();
      else if (!c || c.ended) void this.startCall();
      e.preventDefault();
      return;
    }
    if (e.key === 'Backspace' && !inDial && (!c || c.ended)) {
      this.el.dialInput.value = this.el.dialInput.value.slice(0, -1);
      e.preventDefault();
    }
  }

  /** A dial-pad key: a digit in the dial field, or DTMF during a call. */
  private pressKey(key: string): void {
    const c = this.call;
    this.audio.keyClick(key);
    if (c && c.phase === 'active') {
      try {
        c.sendDtmf(key);
      } catch (err) {
        this.say((err as Error).message, 'error');
      }
      return;
    }
    if (c && !c.ended) return;
    this.el.dialInput.value += key;
  }

  // ---- account

  private fillForm(): void {
    const s = this.settings;
    this.el.displayName.value = s.displayName;
    this.el.user.value = s.user;
    this.el.password.value = s.password;
    this.el.wsUri.value = s.wsUri;
    this.el.remember.checked = s.rememberPassword;
  }

  private readForm(): Settings {
    return {
      ...this.settings,
      displayName: this.el.displayName.value.trim(),
      user: this.el.user.value.trim(),
      password: this.el.password.value,
      wsUri: this.el.wsUri.value.trim(),
      rememberPassword: this.el.remember.checked,
    };
  }

  private register(): void {
    const s = this.readForm();
    const problem = validateSettings(s);
    if (problem) {
      this.showAccountError(problem);
      return;
    }
    this.showAccountError('');
    this.settings = s;
    saveSettings(this.settings);
    try {
      this.phone.start(s);
    } catch (err) {
      this.showAccountError(`Cannot start: ${(err as Error).message}`);
    }
  }

  private async unregister(): Promise<void> {
    this.call?.hangup();
    this.settings.autoRegister = false;
    saveSettings(this.settings);
    await this.phone.stop();
  }

  private onRegistration(s: RegStatus): void {
    if (s.state === 'registered' && !this.settings.autoRegister) {
      this.settings.autoRegister = true;
      saveSettings(this.settings);
    }
    if (s.state === 'registered' && !this.accountPinned) this.showAccount(false);
    if (s.state === 'failed') {
      this.showAccount(true);
      this.showAccountError(s.detail);
    } else {
      this.showAccountError('');
    }
    this.renderRegistration(s);
    this.renderCall();
  }

  private renderRegistration(s: RegStatus): void {
    const el = this.el;
    el.regStatus.dataset.state = s.state;
    el.regText.textContent = s.text;
    el.regStatus.title = s.detail || s.text;
    const showNotice = s.detail !== '' && s.state !== 'failed';
    el.notice.hidden = !showNotice;
    el.notice.textContent = showNotice ? s.detail : '';
    el.notice.dataset.tone = s.state === 'registered' ? 'ok' : s.state === 'offline' ? 'warn' : 'info';
    const active = s.state !== 'idle' && s.state !== 'failed';
    el.registerBtn.textContent = active ? 'Register again' : 'Register';
    el.unregisterBtn.hidden = !active;
  }

  private showAccount(open: boolean): void {
    this.el.account.hidden = !open;
    this.el.accountToggle.setAttribute('aria-expanded', String(open));
    this.el.main.classList.toggle('with-account', open);
  }

  private showAccountError(text: string): void {
    this.el.accountError.hidden = !text;
    this.el.accountError.textContent = text;
  }

  // ---- devices

  private async refreshDevices(): Promise<void> {
    try {
      const { microphones, speakers } = await listDevices();
      this.fillSelect(this.el.microphone, microphones, this.settings.microphoneId);
      this.fillSelect(this.el.speaker, speakers, this.settings.speakerId);
    } catch {
      // no device list: the default devices are used
    }
  }

  private fillSelect(select: HTMLSelectElement, items: DeviceChoice[], chosen: string): void {
    const options = [new Option('System default', ''), ...items.map((d) => new Option(d.label, d.id))];
    select.replaceChildren(...options);
    select.value = items.some((d) => d.id === chosen) ? chosen : '';
  }

  private async chooseMicrophone(id: string): Promise<void> {
    this.settings.microphoneId = id;
    saveSettings(this.settings);
    const c = this.call;
    if (!c || c.ended || !c.localStream) return;
    try {
      await c.replaceMicrophone(await openMicrophone(id));
      this.updateMeters();
    } catch (err) {
      this.say((err as Error).message, 'error');
    }
  }

  private async chooseSpeaker(id: string): Promise<void> {
    this.settings.speakerId = id;
    saveSettings(this.settings);
    await this.applySpeaker();
  }

  private async applySpeaker(): Promise<void> {
    const audio = this.el.remoteAudio as HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> };
    if (!canChooseSpeaker || !audio.setSinkId) return;
    try {
      await audio.setSinkId(this.settings.speakerId);
    } catch {
      // the device went away: stay on the default output
    }
  }

  // ---- calls

  private async startCall(): Promise<void> {
    if (this.startingCall || (this.call && !this.call.ended)) return;
    const target = dialTarget(this.el.dialInput.value, this.phone.domain);
    if (!target) {
      this.say('Enter an extension or a SIP address to call.', 'error');
      this.el.dialInput.focus();
      return;
    }
    if (!this.phone.connected) {
      this.say(this.phone.status.state === 'idle' || this.phone.status.state === 'failed' ? 'Register first: fill in your account and press Register.' : 'Not connected to the server yet.', 'error');
      return;
    }
    this.startingCall = true;
    this.say('');
    try {
      const stream = await openMicrophone(this.settings.microphoneId);
      void this.refreshDevices(); // labels are known once the microphone was granted
      this.phone.call(target, stream);
    } catch (err) {
      this.say(err instanceof MicrophoneError ? err.message : `The call could not start: ${(err as Error).message}`, 'error');
    } finally {
      this.startingCall = false;
    }
  }

  private async answer(): Promise<void> {
    const c = this.call;
    if (!c || c.phase !== 'incoming') return;
    this.stopTone();
    try {
      const stream = await openMicrophone(this.settings.microphoneId);
      void this.refreshDevices();
      if (c.phase !== 'incoming') {
        for (const t of stream.getTracks()) t.stop();
        return;
      }
      c.answer(stream);
    } catch (err) {
      this.say((err as Error).message, 'error');
      c.reject();
    }
  }

  private onCall(c: Call): void {
    this.call = c;
    this.say('');
    c.on('change', () => this.renderCall());
    c.on('ended', (outcome) => {
      this.record(c, outcome.kind, outcome.message);
      const talked = c.answeredAt !== null && outcome.kind === 'completed' ? ` · ${formatDuration(c.duration)}` : '';
      this.say(`${outcome.message}${talked}`, outcome.kind === 'completed' || outcome.kind === 'cancelled' ? 'info' : 'error');
      if (this.call === c) {
        this.call = null;
        if (this.el.incoming.contains(document.activeElement) || this.el.callPanel.contains(document.activeElement)) this.el.dialInput.focus();
      }
      this.renderCall();
    });
    this.renderCall();
    if (c.phase === 'incoming') this.el.answerBtn.focus();
  }

  private record(c: Call, outcome: HistoryEntry['outcome'], detail: string): void {
    this.history.add({
      id: c.id,
      direction: c.direction,
      uri: c.uri,
      name: c.name,
      at: c.startedAt,
      duration: Math.round(c.duration),
      outcome,
      detail,
    });
  }

  private renderCall(): void {
    const el = this.el;
    const c = this.call && !this.call.ended ? this.call : null;
    const incoming = c?.phase === 'incoming';
    const inCall = !!c && !incoming;

    // the ring of an incoming call, the ringback of an outgoing one
    this.setTone(incoming ? 'ring' : c?.phase === 'ringing' && !c.earlyMedia ? 'ringback' : null);

    el.incoming.hidden = !incoming;
    if (incoming) {
      el.incomingAvatar.textContent = initial(c.name);
      el.incomingFrom.textContent = c.name;
      el.incomingUri.textContent = c.uri.replace(/^sips?:/i, '');
    }

    el.callPanel.hidden = !inCall;
    el.dialForm.hidden = !!c;
    el.callBtn.hidden = !!c;
    el.hangupBtn.hidden = !inCall;
    el.dialpad.setAttribute('aria-label', inCall ? 'Keypad (sends tones)' : 'Dial pad');
    el.dialpad.classList.toggle('dtmf', inCall);
    el.callBtn.setAttribute('aria-disabled', String(!this.phone.connected));

    if (c && inCall) {
      el.callAvatar.textContent = initial(c.name);
      el.callPeer.textContent = c.name;
      el.callUri.textContent = c.uri.replace(/^sips?:/i, '');
      el.callState.textContent = this.callStateText(c);
      el.callPanel.dataset.phase = c.held || c.remoteHeld ? 'held' : c.phase;
      el.hangupBtn.setAttribute('aria-label', c.phase === 'calling' || c.phase === 'ringing' ? 'Cancel call' : 'Hang up');
      const active = c.phase === 'active';
      el.muteBtn.disabled = !active;
      el.holdBtn.disabled = !active;
      el.muteBtn.setAttribute('aria-pressed', String(c.muted));
      el.muteBtn.setAttribute('aria-label', c.muted ? 'Unmute microphone' : 'Mute microphone');
      el.muteBtn.querySelector('span')!.textContent = c.muted ? 'Unmute' : 'Mute';
      el.muteBtn.querySelector('use')!.setAttribute('href', c.muted ? '#i-mic-off' : '#i-mic');
      el.holdBtn.setAttribute('aria-pressed', String(c.held));
      el.holdBtn.setAttribute('aria-label', c.held ? 'Resume call' : 'Hold call');
      el.holdBtn.querySelector('span')!.textContent = c.held ? 'Resume' : 'Hold';
      el.holdBtn.querySelector('use')!.setAttribute('href', c.held ? '#i-play' : '#i-pause');
      el.dtmfSent.textContent = c.dtmfSent ? `Keys sent: ${c.dtmfSent}` : '';
    }
    this.renderTimer();
    this.attachRemoteAudio(c);
    this.updateMeters();
    this.syncClock(!!c);
    document.title = !c ? 'Softphone' : incoming ? `Incoming call from ${c.name} · Softphone` : `${c.name} · ${this.callStateText(c)}`;
  }

  private callStateText(c: Call): string {
    switch (c.phase) {
      case 'calling': return 'Calling…';
      case 'ringing': return 'Ringing…';
      case 'incoming': return 'Incoming call';
      case 'answering': return 'Connecting…';
      case 'active':
        if (c.held && c.remoteHeld) return 'On hold (both sides)';
        if (c.held) return 'On hold';
        if (c.remoteHeld) return 'On hold by the other side';
        if (c.mediaState === 'failed') return 'Audio failed';
        if (c.mediaState !== 'connected') return 'Connecting audio…';
        return c.muted ? 'In call · muted' : 'In call';
      case 'ended': return c.outcome?.message ?? 'Call ended.';
    }
  }

  private renderTimer(): void {
    const c = this.call;
    const show = !!c && !c.ended && c.answeredAt !== null;
    this.el.callTimer.hidden = !show;
    if (show) this.el.callTimer.textContent = formatDuration(c.duration);
  }

  private syncClock(on: boolean): void {
    if (on && !this.clock) this.clock = setInterval(() => this.renderTimer(), 500);
    if (!on && this.clock) {
      clearInterval(this.clock);
      this.clock = null;
    }
  }

  private attachRemoteAudio(c: Call | null): void {
    const audio = this.el.remoteAudio;
    const stream = c && c.phase !== 'incoming' ? c.remoteStream : null;
    if (audio.srcObject === stream) return;
    audio.srcObject = stream;
    if (stream) {
      void this.applySpeaker();
      void audio.play().catch(() => undefined);
    }
  }

  private setTone(kind: 'ring' | 'ringback' | null): void {
    if (kind === this.tone) return;
    this.tone = kind;
    if (kind) this.audio.startTone(kind);
    else this.audio.stopTone();
  }

  private stopTone(): void {
    this.setTone(null);
  }

  // ---- meters

  private updateMeters(): void {
    const c = this.call && !this.call.ended && this.call.phase !== 'incoming' ? this.call : null;
    const mic = c?.localStream ?? null;
    const spk = c?.remoteStream ?? null;
    if (mic !== this.meters.micStream) {
      this.meters.mic?.close();
      this.meters.mic = mic ? this.audio.meter(mic) : null;
      this.meters.micStream = mic;
    }
    if (spk !== this.meters.spkStream) {
      this.meters.spk?.close();
      this.meters.spk = spk ? this.audio.meter(spk) : null;
      this.meters.spkStream = spk;
    }
    const running = !!(this.meters.mic || this.meters.spk);
    if (running && !this.meterFrame) this.meterFrame = requestAnimationFrame(() => this.drawMeters());
    if (!running) {
      this.drawMeter(this.el.micMeter, 0, true);
      this.drawMeter(this.el.spkMeter, 0, true);
    }
  }

  private drawMeters(): void {
    this.meterFrame = 0;
    if (!this.meters.mic && !this.meters.spk) return;
    const now = performance.now();
    const aria = now - this.meterAriaAt > 250;
    if (aria) this.meterAriaAt = now;
    // a muted or held microphone sends silence: show it as such
    const c = this.call;
    const micSilent = !!c && (c.muted || c.held || c.remoteHeld);
    this.drawMeter(this.el.micMeter, micSilent ? 0 : (this.meters.mic?.level() ?? 0), aria);
    this.drawMeter(this.el.spkMeter, this.meters.spk?.level() ?? 0, aria);
    this.meterFrame = requestAnimationFrame(() => this.drawMeters());
  }

  private drawMeter(el: HTMLElement, level: number, aria: boolean): void {
    (el.firstElementChild as HTMLElement).style.transform = `scaleX(${(1 - level).toFixed(3)})`;
    if (aria) el.setAttribute('aria-valuenow', String(Math.round(level * 100)));
  }

  // ---- messages and history

  private say(text: string, tone: 'info' | 'error' = 'info'): void {
    this.el.callMessage.textContent = text;
    this.el.callMessage.dataset.tone = tone;
  }

  private renderHistory(): void {
    const list = this.history.list();
    this.el.historyEmpty.hidden = list.length > 0;
    this.el.clearHistory.hidden = list.length === 0;
    const now = Date.now();
    this.el.historyList.replaceChildren(
      ...list.map((h) => {
        const li = document.createElement('li');
        li.className = `h-item ${h.outcome}`;
        const icon = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
        icon.setAttribute('aria-hidden', 'true');
        icon.classList.add('h-icon');
        const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
        use.setAttribute('href', h.direction === 'incoming' ? '#i-in' : '#i-out');
        icon.append(use);
        const text = document.createElement('div');
        text.className = 'h-text';
        const name = document.createElement('p');
        name.className = 'h-name';
        name.textContent = h.name || uriUser(h.uri);
        const meta = document.createElement('p');
        meta.className = 'h-meta';
        const what = h.outcome === 'completed' ? formatDuration(h.duration) : h.detail.replace(/\.$/, '');
        meta.textContent = `${h.direction === 'incoming' ? 'Incoming' : 'Outgoing'} · ${when(h.at, now)} · ${what}`;
        text.append(name, meta);
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'icon-btn call-back';
        btn.dataset.uri = h.uri;
        btn.setAttribute('aria-label', `Call ${h.name || uriUser(h.uri)}`);
        btn.innerHTML = '<svg aria-hidden="true"><use href="#i-phone"/></svg>';
        li.append(icon, text, btn);
        return li;
      }),
    );
  }
}

new App().start();
