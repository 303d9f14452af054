/**
 * Driving the web softphone in Debian's Chromium (Playwright), like a user: fill the account
 * form, press buttons, read the visible status texts and aria attributes. Audio is checked as
 * audio: an AnalyserNode on the page's remote stream finds the dominant frequency.
 *
 *   const browser = await launchChromium({ toneWav: '/tmp/440.wav' });   // the fake microphone
 *   const alice = await SoftphonePage.open(browser, gatewayUrl, 'alice');
 *   await alice.register('alice', 'pw-alice');
 *   await alice.dial('bob');
 *   await alice.waitForCallState(/In call/);
 *   await alice.waitForTone(880);                                          // heard from bob
 *   await alice.close();
 *
 * What the page cannot show is instrumented from outside the app, never with app hooks: an init
 * script records every RTCPeerConnection (for getStats() when something fails), and JsSIP's
 * debug log (the `debug` module reads localStorage.debug) goes with the console to a log file
 * under test-output/e2e-logs/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright';
import { projectRoot } from '../../server/paths.js';

export const OUTPUT_DIR = path.join(projectRoot, 'test-output');
export const SCREENSHOT_DIR = path.join(OUTPUT_DIR, 'screenshots');
export const LOG_DIR = path.join(OUTPUT_DIR, 'e2e-logs');

/** Every wait in here is bounded by this unless told otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface LaunchOptions {
  /** a mono 16-bit WAV the fake microphone plays (in a loop) */
  toneWav: string;
  /** CHROMIUM_PATH, else Debian's /usr/bin/chromium */
  executablePath?: string;
}

/** Chromium with a fake microphone playing `toneWav` and loopback ICE candidates allowed. */
export async function launchChromium(o: LaunchOptions): Promise<Browser> {
  return chromium.launch({
    executablePath: o.executablePath ?? process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    timeout: 20_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${o.toneWav}`,
      // Chromium offers only the machine's interface address otherwise
      '--allow-loopback-in-peer-connection',
      // the test's own AnalyserNode runs without a click
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/** One in-page frequency reading of the remote audio. */
export interface ToneReading {
  /** Hz of the loudest FFT bin between 100 Hz and 4 kHz (null: silence, or no remote stream yet) */
  freq: number | null;
  /** its level, dBFS */
  db: number;
  /** the page has no remote stream (yet) */
  noStream?: true;
}

// The scripts below run in the page. They are strings because this project's Node tsconfig has
// no DOM types; each is small and says what it does.

/** Before the app runs: JsSIP's debug log on, every RTCPeerConnection recorded. */
const INSTRUMENT = `
  try { localStorage.setItem('debug', 'JsSIP:*'); } catch {}
  window.__e2ePeerConnections = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__e2ePeerConnections.push(this); }
  };
`;

/**
 * A diagnostic switch, off by default: E2E_STRIP_SDES_MID=1 removes the MID header extension
 * (a=extmap ... sdes:mid) from every SDP the gateway sends the browser, before the browser
 * applies it. It exists to tell a MID/extension-id problem of the gateway's WebRTC legs apart
 * from everything else; the tests must pass without it.
 */
const STRIP_SDES_MID = `
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (d, ...rest) {
    if (d && typeof d.sdp === 'string') d = { type: d.type, sdp: d.sdp.replace(/a=extmap:[0-9]+ urn:ietf:params:rtp-hdrext:sdes:mid\\r\\n/g, '') };
    return setRemote.call(this, d, ...rest);
  };
`;

/**
 * (count, everyMs) => ToneReading[]: the dominant frequency (100 Hz - 4 kHz) of the stream the
 * page plays (the <audio id="remote-audio"> element's srcObject), by an AnalyserNode with an
 * 8192-point FFT (5.9 Hz bins at 48 kHz).
 */
const READ_TONE = `async ([count, everyMs]) => {
  const stream = document.getElementById('remote-audio').srcObject;
  if (!stream || stream.getAudioTracks().length === 0) return [{ freq: null, db: -1000, noStream: true }];
  const ctx = new AudioContext();
  await ctx.resume();
  try {
    const src = ctx.createMediaStreamSource(stream);
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0;
    src.connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    const hz = ctx.sampleRate / an.fftSize;
    const out = [];
    for (let i = 0; i < count; i++) {
      await new Promise((r) => setTimeout(r, everyMs));
      an.getFloatFrequencyData(bins);
      let best = Math.ceil(100 / hz);
      for (let b = best; b < Math.floor(4000 / hz); b++) if (bins[b] > bins[best]) best = b;
      // all bins at -Infinity: digital silence, no frequency to speak of
      out.push(bins[best] > -1000 ? { freq: Math.round(best * hz), db: Math.round(bins[best]) } : { freq: null, db: -1000 });
    }
    src.disconnect();
    return out;
  } finally {
    await ctx.close();
  }
}`;

/** () => report: states, selected pair, RTP counters and codecs, both SDPs of the last peer connection. */
const MEDIA_REPORT = `async () => {
  const pcs = window.__e2ePeerConnections || [];
  const pc = pcs[pcs.length - 1];
  if (!pc) return { peerConnections: 0 };
  const stats = [];
  (await pc.getStats()).forEach((s) => {
    if (['inbound-rtp', 'outbound-rtp', 'candidate-pair', 'transport', 'codec', 'local-candidate', 'remote-candidate'].includes(s.type)) stats.push(s);
  });
  return {
    peerConnections: pcs.length,
    connectionState: pc.connectionState,
    iceConnectionState: pc.iceConnectionState,
    signalingState: pc.signalingState,
    localDescription: pc.localDescription && pc.localDescription.sdp,
    remoteDescription: pc.remoteDescription && pc.remoteDescription.sdp,
    stats,
  };
}`;

/** Runs one of the function sources above in the page with `args`. */
function inPage<T>(page: Page, fnSource: string, args: unknown[] = []): Promise<T> {
  return page.evaluate(`(${fnSource})(${JSON.stringify(args)})`) as Promise<T>;
}

export class SoftphonePage {
  private readonly log: fs.WriteStream;

  private constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    fs.mkdirSync(LOG_DIR, { recursive: true });
    this.log = fs.createWriteStream(path.join(LOG_DIR, `${name}.log`));
    page.on('console', (m) => this.log.write(`${new Date().toISOString()} [${m.type()}] ${m.text()}\n`));
    page.on('pageerror', (e) => this.log.write(`${new Date().toISOString()} [pageerror] ${e.stack ?? e.message}\n`));
  }

  /** A fresh context (empty localStorage) with the softphone loaded. */
  static async open(browser: Browser, url: string, name: string, viewport = { width: 1200, height: 820 }): Promise<SoftphonePage> {
    const context = await browser.newContext({ viewport, permissions: ['microphone'] });
    context.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    await context.addInitScript({ content: INSTRUMENT });
    if (process.env.E2E_STRIP_SDES_MID === '1') await context.addInitScript({ content: STRIP_SDES_MID });
    const page = await context.newPage();
    const p = new SoftphonePage(name, context, page);
    await page.goto(url);
    await page.getByRole('button', { name: 'Call', exact: true }).waitFor();
    return p;
  }

  // ---- account

  async register(user: string, password: string, displayName = ''): Promise<void> {
    const { page } = this;
    if (await page.locator('#account').isHidden()) await page.getByRole('button', { name: 'Account settings' }).click();
    await page.getByLabel('Display name').fill(displayName);
    await page.getByLabel('SIP user').fill(user);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: /^Register/ }).click();
  }

  async registerAndWait(user: string, password: string, displayName = ''): Promise<void> {
    await this.register(user, password, displayName);
    await this.waitForRegistration(`Registered as ${user}`);
  }

  /** The status pill's text. */
  registrationText(): Promise<string> {
    return this.page.locator('#reg-status').innerText();
  }

  async waitForRegistration(text: string | RegExp, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.page.locator('#reg-status').filter({ hasText: text }).waitFor({ timeout: timeoutMs });
  }

  /** The message under the account form (a failed registration), '' when none. */
  async accountError(): Promise<string> {
    const el = this.page.locator('#account-error');
    return (await el.isVisible()) ? el.innerText() : '';
  }

  /** The banner under the top bar (connection lost, registered again), '' when none. */
  async notice(): Promise<string> {
    const el = this.page.locator('#notice');
    return (await el.isVisible()) ? el.innerText() : '';
  }

  // ---- calls

  async dial(target: string): Promise<void> {
    await this.page.getByLabel('Number or SIP address').fill(target);
    await this.page.getByRole('button', { name: 'Call', exact: true }).click();
  }

  /** Types digits on the dial pad (or, in a call, sends them as DTMF). */
  async pressKeys(keys: string): Promise<void> {
    const names: Record<string, string> = { '*': 'Star', '#': 'Pound' };
    for (const k of keys) await this.page.getByRole('group', { name: /Dial pad|Keypad/ }).getByRole('button', { name: names[k] ?? k, exact: true }).click();
  }

  /** Waits for the incoming-call banner; returns the caller's name as shown. */
  async waitForIncoming(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    const banner = this.page.getByRole('alertdialog', { name: 'Incoming call' });
    await banner.waitFor({ timeout: timeoutMs });
    return this.page.locator('#incoming-from').innerText();
  }

  answer(): Promise<void> {
    return this.page.getByRole('button', { name: 'Answer call' }).click();
  }

  decline(): Promise<void> {
    return this.page.getByRole('button', { name: 'Decline call' }).click();
  }

  hangUp(): Promise<void> {
    return this.page.getByRole('button', { name: /^(Hang up|Cancel call)$/ }).click();
  }

  toggleMute(): Promise<void> {
    return this.page.getByRole('button', { name: /^(Mute|Unmute) microphone$/ }).click();
  }

  toggleHold(): Promise<void> {
    return this.page.getByRole('button', { name: /^(Hold|Resume) call$/ }).click();
  }

  async isPressed(name: RegExp): Promise<boolean> {
    return (await this.page.getByRole('button', { name }).getAttribute('aria-pressed')) === 'true';
  }

  callState(): Promise<string> {
    return this.page.locator('#call-state').innerText();
  }

  async waitForCallState(text: string | RegExp, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.page.locator('#call-state').filter({ hasText: text }).waitFor({ timeout: timeoutMs });
  }

  /** The line under the call button: how the last call ended, or why it could not start. */
  async waitForCallMessage(text: string | RegExp, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    const el = this.page.locator('#call-message').filter({ hasText: text });
    await el.waitFor({ timeout: timeoutMs });
    return el.innerText();
  }

  async waitForIdle(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.page.getByRole('button', { name: 'Call', exact: true }).waitFor({ timeout: timeoutMs });
  }

  /** The call history as shown (name and meta line of each entry, newest first). */
  history(): Promise<string[]> {
    return this.page.locator('#history-list li').allInnerTexts().then((texts) => texts.map((t) => t.replace(/\s+/g, ' ').trim()));
  }

  // ---- audio

  /**
   * `count` readings, `everyMs` apart, of the dominant frequency of the remote stream the
   * page plays (the <audio> element's srcObject), by an AnalyserNode (8192-point FFT).
   */
  async readTone(count = 6, everyMs = 100): Promise<ToneReading[]> {
    const readings = await inPage<ToneReading[]>(this.page, READ_TONE, [count, everyMs]);
    return readings.map((r) => (r.freq === null ? { ...r, db: -Infinity } : r));
  }

  /**
   * Waits until most readings of the remote audio put the dominant frequency within
   * `toleranceHz` of `freq`, at an audible level. Resolves with the last readings.
   */
  async waitForTone(freq: number, { timeoutMs = DEFAULT_TIMEOUT_MS, toleranceHz = 25, minDb = -75 } = {}): Promise<ToneReading[]> {
    const end = Date.now() + timeoutMs;
    let last: ToneReading[] = [];
    while (Date.now() < end) {
      last = await this.readTone();
      const hits = last.filter((r) => r.freq !== null && Math.abs(r.freq - freq) <= toleranceHz && r.db >= minDb).length;
      if (hits >= Math.ceil(last.length * 0.66)) return last;
      await this.page.waitForTimeout(100);
    }
    throw new Error(`${this.name}: no ${freq} Hz tone in the remote audio within ${timeoutMs} ms; last readings ${JSON.stringify(last)}; media: ${JSON.stringify(await this.mediaReport())}`);
  }

  /** Waits until the remote audio is silent (or has no stream): every reading below `maxDb`. */
  async waitForSilence({ timeoutMs = DEFAULT_TIMEOUT_MS, maxDb = -80 } = {}): Promise<ToneReading[]> {
    const end = Date.now() + timeoutMs;
    let last: ToneReading[] = [];
    while (Date.now() < end) {
      last = await this.readTone(4);
      if (last.every((r) => r.freq === null || r.db < maxDb)) return last;
      await this.page.waitForTimeout(100);
    }
    throw new Error(`${this.name}: the remote audio did not go silent within ${timeoutMs} ms; last readings ${JSON.stringify(last)}`);
  }

  /**
   * What WebRTC says about the last peer connection: states, the selected candidate pair,
   * inbound/outbound RTP counters, codecs, and both SDPs (for a precise bug report).
   */
  mediaReport(): Promise<unknown> {
    return inPage(this.page, MEDIA_REPORT);
  }

  async screenshot(file: string): Promise<string> {
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const p = path.join(SCREENSHOT_DIR, file);
    await this.page.screenshot({ path: p, fullPage: true });
    return p;
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
    await new Promise<void>((r) => this.log.end(() => r()));
  }
}
