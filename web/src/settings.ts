/**
 * The account settings (remembered in localStorage) and the pure helpers that turn what the
 * user typed into SIP URIs.
 */

export interface Settings {
  /** shown to the people we call (From display name) */
  displayName: string;
  /** `alice` or `alice@example.com`; without a domain the page's host is the domain */
  user: string;
  password: string;
  /** the gateway's SIP-over-WebSocket endpoint, ws(s)://<host>/sip */
  wsUri: string;
  /** keep the password in this browser (else it is asked again after a reload) */
  rememberPassword: boolean;
  /** register by itself when the page opens (set after a successful registration) */
  autoRegister: boolean;
  /** deviceId of the chosen microphone; '' = the system default */
  microphoneId: string;
  /** deviceId of the chosen speaker (where setSinkId exists); '' = the system default */
  speakerId: string;
}

const KEY = 'softphone.settings.v1';

/** The gateway serving this page also speaks SIP over WebSocket on /sip. */
export function defaultWsUri(loc: Pick<Location, 'protocol' | 'host'> = location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/sip`;
}

export function defaultSettings(): Settings {
  return {
    displayName: '',
    user: '',
    password: '',
    wsUri: defaultWsUri(),
    rememberPassword: true,
    autoRegister: false,
    microphoneId: '',
    speakerId: '',
  };
}

export function loadSettings(storage: Storage = localStorage): Settings {
  const base = defaultSettings();
  try {
    const raw = storage.getItem(KEY);
    if (!raw) return base;
    const saved = JSON.parse(raw) as Partial<Settings>;
    const out = { ...base };
    for (const k of Object.keys(base) as (keyof Settings)[]) {
      if (typeof saved[k] === typeof base[k]) (out as Record<string, unknown>)[k] = saved[k];
    }
    if (!out.wsUri) out.wsUri = base.wsUri;
    return out;
  } catch {
    return base;
  }
}

export function saveSettings(s: Settings, storage: Storage = localStorage): void {
  const stored: Settings = { ...s, password: s.rememberPassword ? s.password : '' };
  try {
    storage.setItem(KEY, JSON.stringify(stored));
  } catch {
    // private mode or full storage: the settings simply are not remembered
  }
}

/** `alice` -> { user: 'alice', domain: fallback }; `alice@example.com` -> both parts. */
export function splitUser(value: string, fallbackDomain: string): { user: string; domain: string } {
  const v = value.trim().replace(/^sips?:/i, '');
  const at = v.lastIndexOf('@');
  if (at < 0) return { user: v, domain: fallbackDomain };
  return { user: v.slice(0, at), domain: v.slice(at + 1) || fallbackDomain };
}

/** The SIP domain: the one in the user field, else the WebSocket server's host, else the page's. */
export function accountDomain(s: Pick<Settings, 'user' | 'wsUri'>, pageHost = location.hostname): string {
  let wsHost = pageHost;
  try {
    wsHost = new URL(s.wsUri).hostname || pageHost;
  } catch {
    // not a URL yet: keep the page's host
  }
  return splitUser(s.user, wsHost).domain;
}

/** What a settings form must hold before we try to register; null when it is fine. */
export function validateSettings(s: Settings): string | null {
  if (!s.user.trim()) return 'Enter your SIP user name.';
  if (/\s/.test(s.user.trim())) return 'The SIP user cannot contain spaces.';
  let url: URL;
  try {
    url = new URL(s.wsUri);
  } catch {
    return 'The WebSocket server must be a URL such as wss://example.com/sip.';
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return 'The WebSocket server must start with ws:// or wss://.';
  return null;
}

/**
 * What the user dialled, as a SIP URI: `bob` or `1001` -> sip:bob@<domain>;
 * `bob@example.com` or `sip:bob@example.com` as written. Visual separators of phone numbers
 * (spaces, dashes, dots between digits, parentheses) are dropped. null when nothing is left.
 */
export function dialTarget(input: string, domain: string): string | null {
  let v = input.trim();
  if (!v) return null;
  if (/^sips?:/i.test(v)) return v;
  if (!v.includes('@') && /^[+\d\s().\-*#]+$/.test(v)) v = v.replace(/[\s().\-]/g, '');
  if (!v) return null;
  return v.includes('@') ? `sip:${v}` : `sip:${v}@${domain}`;
}

/** The user part of a SIP URI, for display ('sip:bob@host' -> 'bob'). */
export function uriUser(uri: string): string {
  const m = /^sips?:([^@;>]+)@/i.exec(uri.trim());
  return m ? decodeURIComponent(m[1]!) : uri.replace(/^sips?:/i, '');
}
