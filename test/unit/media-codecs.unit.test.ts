/**
 * server/media/codecs.ts between real parties: which codec a call between each browser and
 * each phone of test/fixtures/sdp speaks, which telephone-event carries its digits, and the
 * router's payload types. mediasoup does not transcode: one codec both speak, or 488.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { isRoutable, negotiate, routerCodecsFor, type LegCodecs, type SdpCodec } from '../../server/media/codecs.js';
import { parseRemote, routableCodecs, SdpError } from '../../server/media/sdp.js';
import { answerCodecs, bridgeAnswer, bridgeOffer, derive, fixture } from '../helpers/sdp-legs.js';

const BROWSER_OFFERS = ['chromium-156-audio-offer.sdp', 'firefox-121-audio-video-offer.sdp', 'firefox-152-audio-video-offer.sdp', 'safari-26.5.2-audio-video-offer.sdp'];
const PHONE_OFFERS = ['cisco-cp79xx-fw8-audio-offer.sdp', 'grandstream-unknown-audio-offer.sdp', 'microsip-3.19.8-audio-offer.sdp', 'polycom-soundpoint-audio-offer.sdp', 'polycom-vvx410-audio-offer.sdp'];
const PHONE_ANSWERS = ['baresip-1.0.0-audio-answer.sdp', 'baresip-1.0.0-audio-answer-hold.sdp', 'linphonec-5.1.65-audio-answer.sdp'];

const codecs = (name: string): SdpCodec[] => parseRemote(fixture(name)).codecs;
const show = (c: SdpCodec | null): string | null => (c ? `${c.pt}:${c.name}/${c.clockRate}` : null);
const leg = (l: LegCodecs): [string | null, string | null] => [show(l.media), show(l.dtmf)];

/** The opus payload type and the 8 kHz telephone-event each browser offers. */
const BROWSER_PTS: Record<string, { opus: number; dtmf: number }> = {
  'chromium-156-audio-offer.sdp': { opus: 111, dtmf: 126 },
  'firefox-121-audio-video-offer.sdp': { opus: 109, dtmf: 101 },
  'firefox-152-audio-video-offer.sdp': { opus: 109, dtmf: 101 },
  'safari-26.5.2-audio-video-offer.sdp': { opus: 111, dtmf: 126 },
};

describe('codecs the bridge can carry', () => {
  it('keeps opus, G722, PCMU, PCMA and 8 kHz telephone-event of each offer, in the offer\'s order', () => {
    const want: Record<string, string[]> = {
      'chromium-156-audio-offer.sdp': ['111:opus/48000', '9:G722/8000', '0:PCMU/8000', '8:PCMA/8000', '126:telephone-event/8000'],
      'firefox-121-audio-video-offer.sdp': ['109:opus/48000', '9:G722/8000', '0:PCMU/8000', '8:PCMA/8000', '101:telephone-event/8000'],
      'cisco-cp79xx-fw8-audio-offer.sdp': ['0:PCMU/8000', '8:PCMA/8000', '9:G722/8000', '101:telephone-event/8000'],
      'grandstream-unknown-audio-offer.sdp': ['9:G722/8000', '8:PCMA/8000', '0:PCMU/8000', '101:telephone-event/8000'],
      'polycom-vvx410-audio-offer.sdp': ['9:G722/8000', '0:PCMU/8000', '8:PCMA/8000', '127:telephone-event/8000'],
      'polycom-soundpoint-audio-offer.sdp': ['8:PCMA/8000', '0:PCMU/8000', '9:G722/8000', '96:telephone-event/8000'],
    };
    for (const [name, list] of Object.entries(want)) assert.deepEqual(routableCodecs(codecs(name)).map(show), list, name);
  });

  it('leaves out what mediasoup would have to transcode or cannot route', () => {
    const out = (name: string, pt: number): boolean => !isRoutable(codecs(name).find((c) => c.pt === pt)!);
    assert.ok(out('chromium-156-audio-offer.sdp', 63), 'red');
    assert.ok(out('chromium-156-audio-offer.sdp', 13), 'CN');
    // a 48 kHz event stream sent to an 8 kHz phone would play its digits six times too long
    assert.ok(out('chromium-156-audio-offer.sdp', 110), 'telephone-event/48000');
    assert.ok(out('cisco-cp79xx-fw8-audio-offer.sdp', 18), 'G729');
    // iLBC is the name DTMF travels under inside the router: a real iLBC stream must not
    assert.ok(out('cisco-cp79xx-fw8-audio-offer.sdp', 116), 'iLBC');
    assert.ok(out('polycom-vvx410-audio-offer.sdp', 102), 'G7221/16000');
    assert.ok(out('grandstream-unknown-audio-offer.sdp', 121), 'GS-FEC');
    assert.ok(out('grandstream-unknown-audio-offer.sdp', 124), 'RED');
  });
});

describe('a browser calls a phone: its offer, the phone\'s answer', () => {
  const CHOSEN: Record<string, 'PCMU' | 'opus'> = {
    'baresip-1.0.0-audio-answer.sdp': 'PCMU',
    'baresip-1.0.0-audio-answer-hold.sdp': 'PCMU',
    'linphonec-5.1.65-audio-answer.sdp': 'opus',
  };
  for (const browser of BROWSER_OFFERS) {
    for (const phone of PHONE_ANSWERS) {
      it(`${browser} answered by ${phone}`, () => {
        const neg = negotiate(routableCodecs(codecs(browser)), codecs(phone));
        assert.ok(neg, 'a common codec');
        const pts = BROWSER_PTS[browser]!;
        // each side keeps its own payload types (the bridge then sends both the offer's)
        if (CHOSEN[phone] === 'opus') {
          assert.deepEqual(leg(neg.offerer), [`${pts.opus}:opus/48000`, `${pts.dtmf}:telephone-event/8000`]);
          assert.deepEqual(leg(neg.answerer), ['111:opus/48000', '126:telephone-event/8000']);
        } else {
          assert.deepEqual(leg(neg.offerer), ['0:PCMU/8000', `${pts.dtmf}:telephone-event/8000`]);
          assert.deepEqual(leg(neg.answerer), ['0:PCMU/8000', '126:telephone-event/8000']);
        }
      });
    }
  }

  it('fails the call when the phone declines the audio stream (linphonec 5.2.0, port 0)', () => {
    for (const browser of BROWSER_OFFERS) {
      assert.throws(() => bridgeAnswer(fixture(browser), fixture('linphonec-5.2.0-audio-answer.sdp')), (e: unknown) => e instanceof SdpError && /declined/.test(e.message), browser);
    }
  });
});

describe('a phone calls a browser: its offer, the browser\'s answer', () => {
  /** The codec each phone's call speaks: the first of its offer a browser has. */
  const CHOSEN: Record<string, [string, string]> = {
    'cisco-cp79xx-fw8-audio-offer.sdp': ['0:PCMU/8000', '101:telephone-event/8000'],
    'grandstream-unknown-audio-offer.sdp': ['9:G722/8000', '101:telephone-event/8000'],
    'microsip-3.19.8-audio-offer.sdp': ['8:PCMA/8000', '101:telephone-event/8000'],
    'polycom-soundpoint-audio-offer.sdp': ['8:PCMA/8000', '96:telephone-event/8000'],
    'polycom-vvx410-audio-offer.sdp': ['9:G722/8000', '127:telephone-event/8000'],
  };
  for (const phone of PHONE_OFFERS) {
    for (const browser of BROWSER_OFFERS) {
      it(`${phone} answered by ${browser.split('-audio')[0]}`, () => {
        const offered = routableCodecs(codecs(phone));
        const neg = negotiate(offered, answerCodecs(offered, codecs(browser)));
        assert.ok(neg, 'a common codec');
        assert.deepEqual(leg(neg.offerer), CHOSEN[phone]);
        assert.deepEqual(leg(neg.answerer), CHOSEN[phone]);
      });
    }
    it(`${phone} answered by Chromium 156 as captured (PCMU, its own event number)`, () => {
      const neg = negotiate(routableCodecs(codecs(phone)), codecs('chromium-156-audio-answer.sdp'));
      assert.ok(neg);
      assert.equal(show(neg.offerer.media), '0:PCMU/8000');
      assert.deepEqual([neg.offerer.dtmf?.pt, neg.answerer.dtmf?.pt], [Number(CHOSEN[phone]![1].split(':')[0]), 101]);
    });
  }
});

describe('telephone-event', () => {
  it('is carried at 8 kHz on both sides of every pairing, the clock of every 8 kHz codec', () => {
    const pairs: [SdpCodec[], SdpCodec[]][] = [];
    for (const b of BROWSER_OFFERS) for (const p of PHONE_ANSWERS) pairs.push([routableCodecs(codecs(b)), codecs(p)]);
    for (const p of PHONE_OFFERS) for (const b of BROWSER_OFFERS) pairs.push([routableCodecs(codecs(p)), answerCodecs(routableCodecs(codecs(p)), codecs(b))]);
    for (const [offered, answered] of pairs) {
      const neg = negotiate(offered, answered)!;
      for (const side of [neg.offerer, neg.answerer]) {
        assert.ok(side.dtmf, 'digits reach the other party');
        assert.equal(side.dtmf.clockRate, 8000);
        if (side.media.name !== 'opus') assert.equal(side.dtmf.clockRate, side.media.clockRate);
      }
    }
  });

  it('is left out on both sides when only one side has it', () => {
    const noEvents = derive('firefox-121-audio-video-offer.sdp', [[/UDP\/TLS\/RTP\/SAVPF 109 9 0 8 101/, 'UDP/TLS/RTP/SAVPF 109 9 0 8']]);
    const neg = negotiate(routableCodecs(parseRemote(noEvents).codecs), codecs('baresip-1.0.0-audio-answer.sdp'))!;
    assert.equal(show(neg.offerer.media), '0:PCMU/8000');
    assert.equal(neg.offerer.dtmf, null);
    assert.equal(neg.answerer.dtmf, null);
  });
});

describe('nothing in common: 488', () => {
  it('an answer with only G729 to a browser offer shares nothing', () => {
    const g729 = derive('baresip-1.0.0-audio-answer.sdp', [[/RTP\/AVP 0 8 126/, 'RTP/AVP 18 126'], [/a=rtpmap:0 PCMU\/8000\r\na=rtpmap:8 PCMA\/8000/, 'a=rtpmap:18 G729/8000']]);
    for (const browser of BROWSER_OFFERS) {
      assert.equal(negotiate(routableCodecs(codecs(browser)), parseRemote(g729).codecs), null, browser);
      assert.throws(() => bridgeAnswer(fixture(browser), g729), (e: unknown) => e instanceof SdpError && e.status === 488);
    }
  });

  it('telephone-event alone is no codec', () => {
    const eventsOnly = derive('baresip-1.0.0-audio-answer.sdp', [[/RTP\/AVP 0 8 126/, 'RTP/AVP 126']]);
    assert.equal(negotiate(routableCodecs(codecs('chromium-156-audio-offer.sdp')), parseRemote(eventsOnly).codecs), null);
  });

  it('an offer of G729 and iLBC alone is refused before anyone is called', () => {
    const exotic = derive('cisco-cp79xx-fw8-audio-offer.sdp', [[/RTP\/AVP 0 8 18 9 116 101/, 'RTP/AVP 18 116 101']]);
    for (const to of ['webrtc', 'rtp'] as const) {
      assert.throws(() => bridgeOffer(exotic, to), (e: unknown) => e instanceof SdpError && e.status === 488 && /G729, iLBC/.test(e.message));
    }
  });
});

describe('the router of a call', () => {
  for (const name of [...BROWSER_OFFERS, ...PHONE_OFFERS]) {
    it(`numbers its codecs like ${name}, so both parties are sent the numbers they offered`, () => {
      const offered = routableCodecs(codecs(name));
      const router = routerCodecsFor(codecs(name));
      const pts = router.map((c) => c.preferredPayloadType);
      assert.equal(new Set(pts).size, pts.length, `no payload type twice: ${pts.join(' ')}`);
      for (const c of offered) {
        const mime = c.name.toLowerCase() === 'telephone-event' ? 'audio/ilbc' : `audio/${c.name.toLowerCase()}`;
        const r = router.find((x) => x.mimeType.toLowerCase() === mime);
        assert.equal(r?.preferredPayloadType, c.pt, `${c.name}/${c.clockRate}`);
      }
    });
  }
});
