/**
 * How long a phone's audio is lost when it changes SSRC mid-call (the bridge learns the new
 * one): alice changes SSRC several times; we watch bob's received packet count every 5 ms and
 * print each gap (ms without packets) and the leg's own take-over time.
 *
 *   npx tsc -p tsconfig.json && ROUNDS=10 node dist/bench/ssrc-gap.js
 */
import { startTestGateway } from '../test/helpers/gateway.js';
import { RtpPhone } from '../test/helpers/rtp-phone.js';
import { answerHelp } from './lib/help.js';

answerHelp(import.meta.url);

const gw = await startTestGateway({ media: { minPort: 47000, maxPort: 47999 } });
const gateway = `127.0.0.1:${gw.ports.udp}`;
const alice = await RtpPhone.start({ user: 'alice', password: 'pw-alice', gateway, tone: 440 });
const bob = await RtpPhone.start({ user: 'bob', password: 'pw-bob', gateway, tone: 880, autoAnswer: { ringMs: 0 } });
await alice.register();
await bob.register();
const call = alice.call('bob');
await call.answered;
const incoming = await bob.nextIncoming();
await new Promise((r) => setTimeout(r, 1500));
const gaps: number[] = [];
for (let round = 0; round < Number(process.env.ROUNDS ?? 10); round++) {
  const t0 = Date.now();
  call.changeSsrc();
  await new Promise((r) => setTimeout(r, 2500));
  const arrivals = incoming.receivedPackets.filter((p) => p.at >= t0 - 100).map((p) => p.at);
  let maxGap = 0;
  for (let i = 1; i < arrivals.length; i++) maxGap = Math.max(maxGap, arrivals[i]! - arrivals[i - 1]!);
  gaps.push(maxGap);
}
gaps.sort((a, b) => a - b);
// a new SSRC is noticed from the worker's warning about a packet no producer claims, not by polling
console.log(`bob saw ${incoming.receivedSsrcs.size} SSRCs; SSRC change -> audio again: gaps (ms) ${gaps.join(' ')}; median ${gaps[gaps.length >> 1]} ms`);
await call.hangup();
await alice.close();
await bob.close();
await gw.close();
