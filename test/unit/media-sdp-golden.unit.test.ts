/**
 * The SDP the bridge writes, as golden files in rtpengine's manner (test/fixtures/sdp-golden,
 * see its README): `<case>.in.sdp` is what a party offered, `<case>.answer.sdp` (when there is
 * one) what the other party answered, `<case>.out.sdp` what we send, with placeholders for
 * what changes from run to run ({PORT}, {UFRAG}...). Sections and their m=/c= lines must come
 * in the same order; the a= lines of a section are compared as a set, since their order is
 * nothing a browser or phone cares about. `UPDATE_GOLDEN=1` rewrites the .out.sdp files (read
 * the diff before committing it).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { projectRoot } from '../../server/paths.js';
import { bridgeAnswer, bridgeOffer, fixture, fixtureNames, runValues, type RunValues } from '../helpers/sdp-legs.js';

const GOLDEN = path.join(projectRoot, 'test', 'fixtures', 'sdp-golden');
const read = (file: string): string => fs.readFileSync(path.join(GOLDEN, file), 'latin1');

/** What each placeholder stands for; the same placeholder is the same value throughout. */
const PLACEHOLDERS: Record<string, string> = {
  PORT: '\\d{1,5}',
  RTCP_PORT: '\\d{1,5}',
  SESSION_ID: '\\d{1,20}',
  UFRAG: '[A-Za-z0-9+/_-]{4,256}',
  PWD: '[A-Za-z0-9+/_-]{22,256}',
  FINGERPRINT: '(?:[0-9A-F]{2}:){31}[0-9A-F]{2}',
  FOUNDATION: '[A-Za-z0-9+/]{1,32}',
  PRIORITY: '\\d{1,10}',
};

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Matches one expected line (with placeholders) against one written line, binding values. */
function matchLine(expected: string, actual: string, bound: Map<string, string>): boolean {
  const names: string[] = [];
  const source = expected.split(/\{([A-Z_]+)\}/).map((part, i) => {
    if (i % 2 === 0) return escape(part);
    const known = bound.get(part);
    if (known !== undefined) return escape(known);
    const pattern = PLACEHOLDERS[part];
    if (!pattern) throw new Error(`unknown placeholder {${part}} in a golden file`);
    names.push(part);
    return `(${pattern})`;
  });
  const m = new RegExp(`^${source.join('')}$`).exec(actual);
  if (!m) return false;
  names.forEach((n, i) => {
    if (!bound.has(n)) bound.set(n, m[i + 1]!);
  });
  return true;
}

/** Session part and m-sections, each as lines. */
function sections(sdp: string): string[][] {
  const out: string[][] = [[]];
  for (const line of sdp.split('\r\n').filter(Boolean)) {
    if (line.startsWith('m=')) out.push([]);
    out[out.length - 1]!.push(line);
  }
  return out;
}

/** Differences between a golden file and what was written, as readable lines (none: equal). */
function compareGolden(expected: string, actual: string): string[] {
  const problems: string[] = [];
  if (!actual.endsWith('\r\n') || /[^\r]\n/.test(actual)) problems.push('lines must end in CRLF (RFC 4566 §5)');
  const want = sections(expected);
  const got = sections(actual);
  if (want.length !== got.length) return [...problems, `${got.length - 1} m-lines written, ${want.length - 1} expected`];
  const bound = new Map<string, string>();
  want.forEach((wantLines, s) => {
    const where = s === 0 ? 'session' : `m-section ${s}`;
    const gotLines = got[s]!;
    // v= o= s= c= t= m= and the like: in order (RFC 4566 §5 fixes it)
    const fixedWant = wantLines.filter((l) => !l.startsWith('a='));
    const fixedGot = gotLines.filter((l) => !l.startsWith('a='));
    if (fixedWant.length !== fixedGot.length || fixedWant.some((l, i) => !matchLine(l, fixedGot[i]!, bound))) {
      problems.push(`${where}: expected\n  ${fixedWant.join('\n  ')}\nwritten\n  ${fixedGot.join('\n  ')}`);
    }
    const left = gotLines.filter((l) => l.startsWith('a='));
    for (const l of wantLines.filter((x) => x.startsWith('a='))) {
      const i = left.findIndex((g) => matchLine(l, g, bound));
      if (i < 0) problems.push(`${where}: missing ${l}`);
      else left.splice(i, 1);
    }
    for (const l of left) problems.push(`${where}: not expected ${l}`);
  });
  const port = bound.get('PORT');
  const rtcp = bound.get('RTCP_PORT');
  if (port !== undefined && rtcp !== undefined && Number(rtcp) !== Number(port) + 1) problems.push(`RTCP on ${rtcp}, not on the RTP port + 1 (${port})`);
  return problems;
}

/** The written SDP with this run's values put back as placeholders (for UPDATE_GOLDEN). */
function toGolden(sdp: string, v: RunValues): string {
  const pairs: [string, string][] = [
    [v.fingerprint, '{FINGERPRINT}'],
    [v.pwd, '{PWD}'],
    [v.ufrag, '{UFRAG}'],
    [v.sessionId, '{SESSION_ID}'],
    [String(v.priority), '{PRIORITY}'],
    [v.foundation, '{FOUNDATION}'],
    [String(v.port + 1), '{RTCP_PORT}'],
    [String(v.port), '{PORT}'],
  ];
  let out = sdp;
  for (const [value, name] of pairs) out = out.replace(new RegExp(`(?<![\\w./])${escape(value)}(?![\\w.])`, 'g'), name);
  return out;
}

interface Case {
  name: string;
  write: (v: RunValues) => string;
}

function cases(): Case[] {
  const files = fs.readdirSync(GOLDEN).filter((f) => f.endsWith('.in.sdp'));
  return files.sort().map((f) => {
    const name = f.slice(0, -'.in.sdp'.length);
    const input = read(f);
    if (fs.existsSync(path.join(GOLDEN, `${name}.answer.sdp`))) {
      const answer = read(`${name}.answer.sdp`);
      return { name, write: (v) => bridgeAnswer(input, answer, v) };
    }
    const to = /--offer-to-(browser|phone)$/.exec(name)?.[1];
    if (!to) throw new Error(`${name}: an offer case is named <party>--offer-to-browser or <party>--offer-to-phone`);
    return { name, write: (v) => bridgeOffer(input, to === 'browser' ? 'webrtc' : 'rtp', v) };
  });
}

describe('golden SDPs the bridge writes', () => {
  it('every golden file belongs to a case, and every input is a real fixture, unchanged', () => {
    const all = fs.readdirSync(GOLDEN).filter((f) => f.endsWith('.sdp'));
    const names = new Set(cases().map((c) => c.name));
    const real = new Set(fixtureNames().map((f) => fixture(f)));
    for (const f of all) {
      const m = /^(.*)\.(in|answer|out)\.sdp$/.exec(f);
      assert.ok(m && names.has(m[1]!), `${f} belongs to no case`);
      if (m[2] !== 'out') assert.ok(real.has(read(f)), `${f} is not a copy of a file in test/fixtures/sdp`);
    }
    for (const n of names) assert.ok(all.includes(`${n}.out.sdp`), `${n}.out.sdp is missing`);
  });

  for (const c of cases()) {
    it(c.name, () => {
      const v = runValues();
      const written = c.write(v);
      const out = path.join(GOLDEN, `${c.name}.out.sdp`);
      if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(out, toGolden(written, v), 'latin1');
      const problems = compareGolden(fs.readFileSync(out, 'latin1'), written);
      assert.deepEqual(problems, [], `${c.name}:\n${problems.join('\n')}\n--- written:\n${written}`);
    });
  }

  it('the comparison catches what matters (a golden that should fail, fails)', () => {
    const v = runValues();
    const written = bridgeOffer(fixture('cisco-cp79xx-fw8-audio-offer.sdp'), 'webrtc', v);
    const golden = read('cisco-cp79xx--offer-to-browser.out.sdp');
    assert.deepEqual(compareGolden(golden, written), []);
    // a= lines in another order: the same SDP to any parser
    const reordered = written.replace(/(a=rtcp-mux\r\n)(a=rtcp-rsize\r\n)/, '$2$1');
    assert.notEqual(reordered, written);
    assert.deepEqual(compareGolden(golden, reordered), []);
    // a candidate on another port than the m-line's: ICE would never reach us
    const wrongPort = written.replace(new RegExp(`(a=candidate:.* )${v.port}( typ host)`), `$1${v.port + 2}$2`);
    assert.notDeepEqual(compareGolden(golden, wrongPort), []);
    // a missing fingerprint: "Bad Media Description" in Chromium
    assert.notDeepEqual(compareGolden(golden, written.replace(/a=fingerprint:[^\r]*\r\n/, '')), []);
    // an extra line
    assert.notDeepEqual(compareGolden(golden, written.replace('a=rtcp-mux\r\n', 'a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n')), []);
  });
});
