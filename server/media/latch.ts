/**
 * Where a phone's RTP really comes from, decided without being fooled by a few stray packets
 * (the "RTP bleed" attack: anyone who guesses a relay port sends a packet or three and, with
 * naive latching, is sent the call's audio). Pure: packets in, a decision out.
 *
 * The rules (rtpengine's strict-source, Asterisk's strictrtp with its probation):
 * - a packet from the address the phone's SDP names latches at once (the phone as described);
 * - so does one from the source latched before, when the leg learns again (a new SSRC from the
 *   same phone, after a re-INVITE);
 * - any other source latches only after `probation` packets in sequence (one SSRC, each
 *   sequence number the previous plus one) with nothing else from it in between: a phone behind
 *   NAT, whose SDP names a private address, gets there in a few packets; a handful of stray
 *   packets never does;
 * - the SDP may come after the first packets (a phone sends RTP as it sends its 200 OK): the
 *   sources seen so far are weighed again when it does.
 * Sources are bounded (`maxSources`, the oldest forgotten).
 */

export interface Source {
  address: string;
  port: number;
}

export interface Latched extends Source {
  ssrc: number;
  /** why this source was taken: the SDP's address, the source latched before, or probation */
  why: 'sdp' | 'previous' | 'probation';
  /** packets of this source and SSRC seen while learning (the last of them latched) */
  packets: number;
}

export interface LatchOptions {
  /** in-sequence packets of one SSRC needed from a source the SDP does not name */
  probation: number;
  /** sources tracked at once */
  maxSources?: number;
}

interface Candidate extends Source {
  ssrc: number;
  seq: number;
  run: number;
  packets: number;
}

export class RtpLatch {
  private readonly candidates = new Map<string, Candidate>();
  private expected: string | null = null;
  private previous: Source | null = null;
  /** sources that sent while learning and were not taken, with their packet counts (for the log) */
  ignored: string[] = [];

  constructor(private readonly opts: LatchOptions) {}

  /** The address the phone's SDP names (c=); null: not known yet (or 0.0.0.0, on hold). */
  expect(address: string | null): Latched | null {
    this.expected = address && address !== '0.0.0.0' ? address : null;
    if (!this.expected) return null;
    // the first packets may have come before the SDP: the newest from that address wins
    let found: Candidate | null = null;
    for (const c of this.candidates.values()) if (c.address === this.expected) found = c;
    return found ? this.take(found, 'sdp') : null;
  }

  /** Learn again, trusting the source latched before as much as the SDP's address. */
  restart(previous: Source | null): void {
    this.candidates.clear();
    this.previous = previous;
  }

  /** Weighs one RTP packet (version 2, not RTCP); returns the source to latch to, or null. */
  packet(buf: Buffer, from: Source): Latched | null {
    const ssrc = buf.readUInt32BE(8);
    const seq = buf.readUInt16BE(2);
    const key = `${from.address}:${from.port}`;
    let c = this.candidates.get(key);
    if (c && c.ssrc === ssrc && seq === ((c.seq + 1) & 0xffff)) {
      c.run++;
      c.seq = seq;
    } else {
      if (c) this.candidates.delete(key);
      c = { address: from.address, port: from.port, ssrc, seq, run: 1, packets: 0 };
      if (this.candidates.size >= (this.opts.maxSources ?? 16)) {
        const oldest = this.candidates.keys().next().value;
        if (oldest !== undefined) this.candidates.delete(oldest);
      }
      this.candidates.set(key, c);
    }
    c.packets++;
    if (this.expected !== null && from.address === this.expected) return this.take(c, 'sdp');
    if (this.previous && this.previous.address === from.address && this.previous.port === from.port) return this.take(c, 'previous');
    if (c.run >= this.opts.probation) return this.take(c, 'probation');
    return null;
  }

  private take(c: Candidate, why: Latched['why']): Latched {
    this.candidates.delete(`${c.address}:${c.port}`);
    this.ignored = [...this.candidates.values()].map((o) => `${o.address}:${o.port} (${o.packets} packets)`);
    this.candidates.clear();
    return { address: c.address, port: c.port, ssrc: c.ssrc, why, packets: c.packets };
  }
}
