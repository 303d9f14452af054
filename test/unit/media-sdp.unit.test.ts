/**
 * server/media/sdp.ts reading real SDPs (test/fixtures/sdp: browsers, desk phones,
 * softphones): which m-line the bridge takes, as which kind of leg, where it sends, what it
 * may send, and hold. Every fixture has its expectation here, written by reading the file.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { answerDirection, parseRemote, SdpError, type Direction, type LegKind, type RemoteMedia } from '../../server/media/sdp.js';
import { derive, fixture, fixtureNames } from '../helpers/sdp-legs.js';

interface Expected {
  kind: LegKind;
  protocol: string;
  address: string;
  port: number;
  /** pt:name/clock, in the party's order */
  codecs: string[];
  direction: Direction;
  /** index of the audio m-line taken, and the m-line types */
  mediaIndex: number;
  mlines: string[];
  ice?: { ufrag: string; pwd: string };
  /** sha-256 fingerprint prefix */
  fingerprint?: string;
  setup?: RemoteMedia['setup'];
  mid?: string;
  midExtId?: number;
  ssrc?: number;
  cname?: string;
  rtcp?: { port: number; address: string | null };
  rtcpMux?: boolean;
  origin: { sessionId: string; version: number };
}

const BROWSER_AUDIO = ['111:opus/48000', '63:red/48000', '9:G722/8000', '0:PCMU/8000', '8:PCMA/8000', '13:CN/8000', '110:telephone-event/48000', '126:telephone-event/8000'];
const FIREFOX_AUDIO = ['109:opus/48000', '9:G722/8000', '0:PCMU/8000', '8:PCMA/8000', '101:telephone-event/8000'];
const BARESIP = ['0:PCMU/8000', '8:PCMA/8000', '126:telephone-event/8000'];

const EXPECTED: Record<string, Expected | { refused: RegExp }> = {
  'chromium-156-audio-offer.sdp': {
    kind: 'webrtc', protocol: 'UDP/TLS/RTP/SAVPF', address: '192.0.2.2', port: 56302, codecs: BROWSER_AUDIO, direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], ice: { ufrag: 'hTdc', pwd: 'P2W3o/F3ADqQ/Kf86HNBn5fU' }, fingerprint: '7A:E1:50', setup: 'actpass',
    mid: '0', midExtId: 4, ssrc: 4053594724, cname: '+tzBKpSfWXe3xwQA', rtcp: { port: 9, address: '0.0.0.0' }, rtcpMux: true,
    origin: { sessionId: '2173576758226033461', version: 2 },
  },
  'chromium-156-audio-answer.sdp': {
    kind: 'webrtc', protocol: 'UDP/TLS/RTP/SAVPF', address: '127.0.0.1', port: 46776, codecs: ['0:PCMU/8000', '8:PCMA/8000', '101:telephone-event/8000'], direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], ice: { ufrag: 'kjsb', pwd: 'lDGF8MUGi4m98fqHvDLSHa2H' }, fingerprint: '1C:A7:90', setup: 'active',
    mid: '0', midExtId: 1, ssrc: 2933610251, cname: 'ZzXRfvT/mXnA5oK4', rtcp: { port: 9, address: '0.0.0.0' }, rtcpMux: true,
    origin: { sessionId: '6819406370373688788', version: 2 },
  },
  'firefox-121-audio-video-offer.sdp': {
    // c=0.0.0.0 port 9 before ICE: no hold for an ICE offer; fingerprint at session level
    kind: 'webrtc', protocol: 'UDP/TLS/RTP/SAVPF', address: '0.0.0.0', port: 9, codecs: FIREFOX_AUDIO, direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio', 'video'], ice: { ufrag: '6c0579ea', pwd: '59efe498b762e472067fa5e134df8722' }, fingerprint: '75:4F:CA', setup: 'actpass',
    mid: '0', midExtId: 3, ssrc: 3772375965, cname: '{b11da7a1-56f4-4fc1-a969-6d82236f494d}', rtcpMux: true,
    origin: { sessionId: '4408209549129620304', version: 0 },
  },
  'firefox-152-audio-video-offer.sdp': {
    // video first: audio is the second m-line (mid 1); direction and fingerprint at session level
    kind: 'webrtc', protocol: 'UDP/TLS/RTP/SAVPF', address: '0.0.0.0', port: 9, codecs: FIREFOX_AUDIO, direction: 'sendrecv',
    mediaIndex: 1, mlines: ['video', 'audio'], ice: { ufrag: 'eceb5b58', pwd: 'a5e919b107fc0ee2dbcf909c6b552dc6' }, fingerprint: 'F2:1C:F2', setup: 'actpass',
    mid: '1', midExtId: 3, ssrc: 4257632709, cname: '{48cf2566-0fd9-4ac2-8f04-32da9f1a8b34}', rtcpMux: true,
    origin: { sessionId: '8847547619928269125', version: 0 },
  },
  'safari-26.5.2-audio-video-offer.sdp': {
    kind: 'webrtc', protocol: 'UDP/TLS/RTP/SAVPF', address: '0.0.0.0', port: 9, codecs: BROWSER_AUDIO, direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio', 'video', 'application'], ice: { ufrag: 'A4sp', pwd: 'NtRew5Uit024CmNLovX4++t4' }, fingerprint: '6E:52:CA', setup: 'actpass',
    mid: '0', midExtId: 4, ssrc: 4124696349, cname: 'c5QoiALq+DrR4NJX', rtcp: { port: 9, address: '0.0.0.0' }, rtcpMux: true,
    origin: { sessionId: '6581395123809502337', version: 2 },
  },
  'polycom-vvx410-audio-offer.sdp': {
    // best-effort SRTP: the SDES RTP/SAVP m-line is passed over for its RTP/AVP twin
    kind: 'rtp', protocol: 'RTP/AVP', address: '192.168.3.4', port: 2252,
    codecs: ['9:G722/8000', '102:G7221/16000', '0:PCMU/8000', '8:PCMA/8000', '18:G729/8000', '127:telephone-event/8000'], direction: 'sendrecv',
    mediaIndex: 1, mlines: ['audio', 'audio'], rtcpMux: false, origin: { sessionId: '1429995836', version: 1429995836 },
  },
  'polycom-soundpoint-audio-offer.sdp': {
    // a=crypto on RTP/AVP: plain RTP (the keys are an option the answer may leave out)
    kind: 'rtp', protocol: 'RTP/AVP', address: '192.168.9.74', port: 49200,
    codecs: ['8:PCMA/8000', '0:PCMU/8000', '9:G722/8000', '18:G729/8000', '96:telephone-event/8000'], direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], rtcpMux: false, origin: { sessionId: '1197975037', version: 1197975037 },
  },
  'cisco-cp79xx-fw8-audio-offer.sdp': {
    // c= only at media level, after m=
    kind: 'rtp', protocol: 'RTP/AVP', address: '10.10.10.10', port: 20096,
    codecs: ['0:PCMU/8000', '8:PCMA/8000', '18:G729/8000', '9:G722/8000', '116:iLBC/8000', '101:telephone-event/8000'], direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], rtcpMux: false, origin: { sessionId: '7221', version: 0 },
  },
  'grandstream-unknown-audio-offer.sdp': {
    // OSRTP: RTP/SAVP then RTP/AVP on one port, both a=mid:0
    kind: 'rtp', protocol: 'RTP/AVP', address: '10.69.2.171', port: 10730,
    codecs: ['9:G722/8000', '8:PCMA/8000', '0:PCMU/8000', '18:G729/8000', '101:telephone-event/8000', '121:GS-FEC/19200', '124:RED/19200'], direction: 'sendrecv',
    mediaIndex: 1, mlines: ['audio', 'audio'], mid: '0', rtcpMux: false, origin: { sessionId: '8000', version: 8000 },
  },
  'microsip-3.19.8-audio-offer.sdp': {
    kind: 'rtp', protocol: 'RTP/AVP', address: '10.2.19.102', port: 4000, codecs: ['8:PCMA/8000', '0:PCMU/8000', '101:telephone-event/8000'], direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], ssrc: 370289018, cname: '089912e5446c1847', rtcp: { port: 4001, address: '10.2.19.102' }, rtcpMux: false,
    origin: { sessionId: '3784977145', version: 3784977145 },
  },
  'linphonec-5.1.65-audio-answer.sdp': {
    // no rtpmap for the static 0 and 8, no direction attribute
    kind: 'rtp', protocol: 'RTP/AVP', address: '127.0.0.1', port: 21060, codecs: ['111:opus/48000', '0:PCMU/8000', '8:PCMA/8000', '126:telephone-event/8000'], direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], rtcpMux: false, origin: { sessionId: '2533', version: 3859 },
  },
  'linphonec-5.2.0-audio-answer.sdp': { refused: /declined/ },
  'baresip-1.0.0-audio-answer.sdp': {
    kind: 'rtp', protocol: 'RTP/AVP', address: '127.0.0.1', port: 21012, codecs: BARESIP, direction: 'sendrecv',
    mediaIndex: 0, mlines: ['audio'], ssrc: 2804800474, cname: 'sip:1001@127.0.0.1', rtcpMux: false, origin: { sessionId: '2951014147', version: 1627322940 },
  },
  'baresip-1.0.0-audio-answer-hold.sdp': {
    kind: 'rtp', protocol: 'RTP/AVP', address: '127.0.0.1', port: 21012, codecs: BARESIP, direction: 'recvonly',
    mediaIndex: 0, mlines: ['audio'], ssrc: 2804800474, cname: 'sip:1001@127.0.0.1', rtcpMux: false, origin: { sessionId: '2951014147', version: 1627322941 },
  },
};

const codecsOf = (r: RemoteMedia): string[] => r.codecs.map((c) => `${c.pt}:${c.name}/${c.clockRate}`);

describe('SDP fixtures, read as the bridge reads them', () => {
  it('has an expectation for every fixture (a new fixture needs one)', () => {
    assert.deepEqual(fixtureNames(), Object.keys(EXPECTED).sort());
  });

  for (const [name, want] of Object.entries(EXPECTED)) {
    it(name, () => {
      if ('refused' in want) {
        assert.throws(() => parseRemote(fixture(name)), (e: unknown) => e instanceof SdpError && e.status === 488 && want.refused.test(e.message));
        return;
      }
      const r = parseRemote(fixture(name));
      assert.equal(r.kind, want.kind, 'leg kind');
      assert.equal(r.protocol, want.protocol);
      assert.equal(`${r.address}:${r.port}`, `${want.address}:${want.port}`, 'where its media goes');
      assert.deepEqual(codecsOf(r), want.codecs);
      assert.equal(r.direction, want.direction);
      assert.equal(r.mediaIndex, want.mediaIndex);
      assert.deepEqual(r.mlines.map((m) => m.type), want.mlines);
      assert.deepEqual(r.ice, want.ice ?? null);
      if (want.fingerprint) {
        assert.equal(r.fingerprints.length, 1);
        assert.equal(r.fingerprints[0]!.algorithm, 'sha-256');
        assert.ok(r.fingerprints[0]!.value.startsWith(want.fingerprint), r.fingerprints[0]!.value);
        assert.match(r.fingerprints[0]!.value, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      } else {
        assert.deepEqual(r.fingerprints, []);
      }
      assert.equal(r.setup, want.setup ?? null);
      assert.equal(r.mid, want.mid ?? null);
      assert.equal(r.midExtId, want.midExtId ?? null, 'id of the MID header extension');
      assert.equal(r.ssrc, want.ssrc ?? null);
      assert.equal(r.cname, want.cname ?? null);
      assert.deepEqual({ port: r.rtcpPort, address: r.rtcpAddress }, want.rtcp ?? { port: null, address: null });
      assert.equal(r.rtcpMux, want.rtcpMux ?? false);
      assert.deepEqual(r.origin, want.origin);
    });
  }

  it('keeps opus stereo and the codecs\' fmtp as written', () => {
    const chrome = parseRemote(fixture('chromium-156-audio-offer.sdp'));
    assert.deepEqual(chrome.codecs[0], { pt: 111, name: 'opus', clockRate: 48000, channels: 2, fmtp: 'minptime=10;useinbandfec=1' });
    const firefox = parseRemote(fixture('firefox-121-audio-video-offer.sdp'));
    assert.equal(firefox.codecs.find((c) => c.pt === 101)?.fmtp, '0-15');
    assert.equal(firefox.codecs.find((c) => c.pt === 101)?.channels, 1);
    const linphone = parseRemote(fixture('linphonec-5.1.65-audio-answer.sdp'));
    assert.deepEqual(linphone.codecs[1], { pt: 0, name: 'PCMU', clockRate: 8000, channels: null, fmtp: null });
  });

  it('reads the m-lines it does not bridge, to refuse them in place', () => {
    const safari = parseRemote(fixture('safari-26.5.2-audio-video-offer.sdp'));
    assert.deepEqual(safari.mlines.map((m) => [m.type, m.protocol, m.mid]), [
      ['audio', 'UDP/TLS/RTP/SAVPF', '0'],
      ['video', 'UDP/TLS/RTP/SAVPF', '1'],
      ['application', 'UDP/DTLS/SCTP', '2'],
    ]);
    assert.equal(safari.mlines[2]!.payloads, 'webrtc-datachannel');
    const vvx = parseRemote(fixture('polycom-vvx410-audio-offer.sdp'));
    assert.deepEqual(vvx.mlines.map((m) => m.protocol), ['RTP/SAVP', 'RTP/AVP']);
  });
});

describe('SDP the bridge cannot carry', () => {
  it('refuses a video-only offer (488)', () => {
    const videoOnly = derive('firefox-121-audio-video-offer.sdp', [[/m=audio[\s\S]*?(?=m=video)/, '']]);
    assert.throws(() => parseRemote(videoOnly), (e: unknown) => e instanceof SdpError && e.status === 488 && /no audio/.test(e.message));
  });

  it('refuses SDES-only SRTP (RTP/SAVP with a=crypto and no RTP/AVP twin) rather than answer it with DTLS', () => {
    const sdesOnly = derive('polycom-vvx410-audio-offer.sdp', [[/m=audio 2252 RTP\/AVP[\s\S]*$/, '']]);
    assert.throws(() => parseRemote(sdesOnly), (e: unknown) => e instanceof SdpError && e.status === 488 && /SDES/.test(e.message));
  });

  it('refuses an offer whose only audio stream is disabled (port 0)', () => {
    const disabled = derive('cisco-cp79xx-fw8-audio-offer.sdp', [[/m=audio 20096/, 'm=audio 0']]);
    assert.throws(() => parseRemote(disabled), (e: unknown) => e instanceof SdpError && e.status === 488 && /declined/.test(e.message));
  });

  it('takes a phone\'s RTP/AVP with ICE attributes as a plain RTP leg (answered without ICE)', () => {
    const withIce = derive('linphonec-5.1.65-audio-answer.sdp', [[/t=0 0\r\n/, 't=0 0\r\na=ice-ufrag:Zk3x\r\na=ice-pwd:0b8c9f6a2d1e4f3a5b6c7d8e\r\n'], [/(a=rtpmap:126 [^\r]*\r\n)/, '$1a=candidate:1 1 UDP 2130706431 127.0.0.1 21060 typ host\r\n']]);
    const r = parseRemote(withIce);
    assert.equal(r.kind, 'rtp');
    assert.deepEqual(r.ice, { ufrag: 'Zk3x', pwd: '0b8c9f6a2d1e4f3a5b6c7d8e' });
  });

  it('says so when the text is not SDP at all', () => {
    assert.throws(() => parseRemote('hello'), (e: unknown) => e instanceof SdpError && e.status === 488);
    assert.throws(() => parseRemote(''), (e: unknown) => e instanceof SdpError && e.status === 488);
  });
});

describe('hold', () => {
  it('reads a hold answer (recvonly) and its resume (sendrecv, next o= version)', () => {
    const held = parseRemote(fixture('baresip-1.0.0-audio-answer-hold.sdp'));
    const talking = parseRemote(fixture('baresip-1.0.0-audio-answer.sdp'));
    assert.equal(held.direction, 'recvonly');
    assert.equal(talking.direction, 'sendrecv');
    assert.equal(held.origin.sessionId, talking.origin.sessionId);
    assert.equal(held.origin.version, talking.origin.version + 1);
    // still where the phone listens: the music on hold has somewhere to go
    assert.equal(`${held.address}:${held.port}`, '127.0.0.1:21012');
  });

  const cisco = (edits: [RegExp, string][]): RemoteMedia => parseRemote(derive('cisco-cp79xx-fw8-audio-offer.sdp', edits));

  it('reads a phone\'s hold offers: a=sendonly, a=inactive, and RFC 2543 c=0.0.0.0', () => {
    assert.equal(cisco([[/a=sendrecv/, 'a=sendonly']]).direction, 'sendonly');
    assert.equal(cisco([[/a=sendrecv/, 'a=inactive']]).direction, 'inactive');
    // RFC 3264 §8.4: c=0.0.0.0 (old style) means "send me nothing"
    const old = cisco([[/c=IN IP4 10\.10\.10\.10/, 'c=IN IP4 0.0.0.0']]);
    assert.equal(old.address, '0.0.0.0');
    assert.equal(old.direction, 'inactive');
    assert.equal(cisco([[/c=IN IP4 10\.10\.10\.10/, 'c=IN IP4 0.0.0.0'], [/a=sendrecv/, 'a=sendonly']]).direction, 'sendonly');
    assert.equal(cisco([[/c=IN IP4 10\.10\.10\.10/, 'c=IN IP4 0.0.0.0'], [/a=sendrecv/, 'a=recvonly']]).direction, 'inactive');
  });

  it('reads a browser\'s hold (a=sendonly on the audio m-line)', () => {
    const r = parseRemote(derive('chromium-156-audio-offer.sdp', [[/a=sendrecv/, 'a=sendonly']]));
    assert.equal(r.direction, 'sendonly');
    assert.equal(r.kind, 'webrtc');
  });

  it('answers a direction with its mirror (RFC 3264 §6.1)', () => {
    const table: [Direction, Direction][] = [['sendrecv', 'sendrecv'], ['sendonly', 'recvonly'], ['recvonly', 'sendonly'], ['inactive', 'inactive']];
    for (const [offered, answered] of table) assert.equal(answerDirection(offered), answered, offered);
    assert.equal(answerDirection('sendrecv', 'recvonly'), 'recvonly');
    assert.equal(answerDirection('sendonly', 'sendonly'), 'inactive');
  });
});
