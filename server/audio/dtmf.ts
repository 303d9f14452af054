/**
 * DTMF as RTP telephone-events (RFC 4733, which obsoletes RFC 2833).
 *
 * Payload (RFC 4733 §2.3), 4 bytes:
 *   event (8) | E (1) R (1) volume (6) | duration (16, in RTP timestamp units)
 * Event codes 0-15 are the DTMF keys (§3.2, Table 7): '0'-'9' = 0-9, '*' = 10, '#' = 11,
 * 'A'-'D' = 12-15. All packets of one event carry the event's start timestamp; the duration
 * grows with each update; the final packet has E set and is sent three times (§2.5.1.4).
 */

export interface TelephoneEvent {
  /** Event code (0-255; 0-15 are DTMF keys). */
  event: number;
  /** E bit: this is (a retransmission of) the final packet of the event. */
  end: boolean;
  /** Power level in -dBm0, 0-63 (DTMF senders typically use 10). */
  volume: number;
  /** Duration so far, in RTP timestamp units (0-65535). */
  duration: number;
}

const DIGITS = '0123456789*#ABCD';

/** '0'-'9', '*', '#', 'A'-'D' (lower case accepted) -> event code; throws on anything else. */
export function digitToEvent(digit: string): number {
  const i = digit.length === 1 ? DIGITS.indexOf(digit.toUpperCase()) : -1;
  if (i < 0) throw new RangeError(`not a DTMF digit: ${JSON.stringify(digit)}`);
  return i;
}

/** Event code -> digit, or undefined for non-DTMF events (tones, flash...). */
export function eventToDigit(event: number): string | undefined {
  return event >= 0 && event < 16 ? DIGITS[event] : undefined;
}

/** Serialize one payload into `out` (4 bytes; a new Buffer when omitted). */
export function encodeTelephoneEvent(ev: TelephoneEvent, out: Uint8Array = Buffer.allocUnsafe(4)): Uint8Array {
  if (ev.duration < 0 || ev.duration > 0xffff) {
    throw new RangeError('duration must fit 16 bits (§2.5.1.3: segment longer events)');
  }
  out[0] = ev.event & 0xff;
  out[1] = (ev.end ? 0x80 : 0) | (ev.volume & 0x3f);
  out[2] = ev.duration >> 8;
  out[3] = ev.duration & 0xff;
  return out;
}

/** Parse a payload (its first 4 bytes; RFC 4733 allows redundant blocks only with RFC 2198). */
export function decodeTelephoneEvent(payload: Uint8Array): TelephoneEvent | undefined {
  if (payload.length < 4) return undefined;
  return {
    event: payload[0]!,
    end: (payload[1]! & 0x80) !== 0,
    volume: payload[1]! & 0x3f,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

export interface DigitPacketOptions {
  /** Tone length in ms (default 100, comfortably above the 40 ms detectors need). */
  durationMs?: number;
  /** RTP clock rate of the telephone-event format (default 8000; 48000 with Opus). */
  clockRate?: number;
  /** Interval between updates in ms (default 20, one audio packet). */
  intervalMs?: number;
  /** Volume, -dBm0 (default 10). */
  volume?: number;
}

/** One packet of an event; all of them use the event's start timestamp. */
export interface DigitPacket {
  payload: Uint8Array;
  /** RTP marker: set on the first packet of the event (§2.5.1.1). */
  marker: boolean;
  end: boolean;
  /** Milliseconds after the start at which to send it. */
  sendAtMs: number;
}

/**
 * The usual sender sequence for one digit: an update every `intervalMs` with the duration
 * so far (the first carries the marker), then the final duration three times with E set
 * (§2.5.1.4). Give each packet a new sequence number and the same timestamp.
 */
export function digitPackets(digit: string, options: DigitPacketOptions = {}): DigitPacket[] {
  const event = digitToEvent(digit);
  const clockRate = options.clockRate ?? 8000;
  const durationMs = options.durationMs ?? 100;
  const intervalMs = options.intervalMs ?? 20;
  const volume = options.volume ?? 10;
  const step = Math.round((clockRate * intervalMs) / 1000);
  const total = Math.round((clockRate * durationMs) / 1000);
  if (step <= 0 || total <= 0) throw new RangeError('duration and interval must be positive');
  if (total > 0xffff) throw new RangeError('digit longer than one 16-bit duration segment');
  const packets: DigitPacket[] = [];
  let k = 1;
  for (; k * step < total; k++) {
    packets.push({
      payload: encodeTelephoneEvent({ event, end: false, volume, duration: k * step }),
      marker: k === 1,
      end: false,
      sendAtMs: (k - 1) * intervalMs,
    });
  }
  for (let r = 0; r < 3; r++) {
    packets.push({
      payload: encodeTelephoneEvent({ event, end: true, volume, duration: total }),
      marker: packets.length === 0,
      end: true,
      sendAtMs: (k - 1 + r) * intervalMs,
    });
  }
  return packets;
}

/** A digit recognised by DtmfReceiver. */
export interface ReceivedDigit {
  digit: string;
  /** The event's RTP timestamp (identifies it). */
  timestamp: number;
  /** In RTP timestamp units (as far as known when reported). */
  duration: number;
}

/**
 * Turns a stream of telephone-event packets into digits, once each: an event is reported
 * on its first end packet (retransmissions of it are ignored), or, if all its end packets
 * were lost, when the next event starts (`flush()` does the same at the end of a call).
 */
export class DtmfReceiver {
  private current: { timestamp: number; event: number; duration: number; reported: boolean } | undefined;

  /** Feed one packet's RTP timestamp and payload; returns the digit(s) completed by it. */
  push(timestamp: number, payload: Uint8Array): ReceivedDigit[] {
    const ev = decodeTelephoneEvent(payload);
    if (!ev) return [];
    const done: ReceivedDigit[] = [];
    const cur = this.current;
    if (!cur || cur.timestamp !== timestamp) {
      if (cur && !cur.reported) done.push(...this.flush());
      this.current = { timestamp, event: ev.event, duration: ev.duration, reported: false };
    } else if (ev.duration > cur.duration) {
      cur.duration = ev.duration;
    }
    const c = this.current!;
    if (ev.end && !c.reported) {
      c.reported = true;
      const digit = eventToDigit(c.event);
      if (digit !== undefined) done.push({ digit, timestamp, duration: c.duration });
    }
    return done;
  }

  /** Report an event still in progress (its end packets never came). */
  flush(): ReceivedDigit[] {
    const c = this.current;
    if (!c || c.reported) return [];
    c.reported = true;
    const digit = eventToDigit(c.event);
    return digit === undefined ? [] : [{ digit, timestamp: c.timestamp, duration: c.duration }];
  }
}
