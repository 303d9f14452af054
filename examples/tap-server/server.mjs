#!/usr/bin/env node
/**
 * An example audio-tap server for trying the gateway's taps: it records what each tap
 * streams to a WAV file and, with ECHO=1, plays it back into the call.
 *
 *   PORT=8090 RECORD_DIR=./recordings ECHO=1 node examples/tap-server/server.mjs
 *
 * Speaks the binary L16 the gateway sends (mod_audio_stream / wsbridge style: a first text
 * message with metadata, then binary frames). The sample rate and channels come from the
 * metadata ("content-type": "audio/l16;rate=16000", or {"rate":16000,"channels":2}),
 * 8000 Hz mono otherwise. Only Node and the `ws` package.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 8090);
const dir = path.resolve(process.env.RECORD_DIR ?? './recordings');
const echo = process.env.ECHO === '1';
fs.mkdirSync(dir, { recursive: true });

function wavHeader(dataBytes, rate, channels) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + dataBytes, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * channels * 2, 28); h.writeUInt16LE(channels * 2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(dataBytes, 40);
  return h;
}

function formatOf(text) {
  let rate = 8000;
  let channels = 1;
  try {
    const meta = JSON.parse(text);
    const ct = String(meta['content-type'] ?? meta.contentType ?? '');
    const m = /rate=(\d+)/.exec(ct);
    if (m) rate = Number(m[1]);
    if (Number(meta.rate ?? meta.sampleRate)) rate = Number(meta.rate ?? meta.sampleRate);
    if (Number(meta.channels)) channels = Number(meta.channels);
    if (meta.mix === 'stereo' || meta.mixType === 'stereo') channels = 2;
  } catch {
    const m = /(\d+)\s*k?/.exec(text);
    if (m && /16/.test(m[1])) rate = 16000;
  }
  return { rate, channels };
}

let n = 0;
const wss = new WebSocketServer({ port });
wss.on('connection', (ws, req) => {
  const id = `${new Date().toISOString().replace(/[:.]/g, '-')}-${++n}`;
  const file = path.join(dir, `${id}.wav`);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, Buffer.alloc(44));
  let bytes = 0;
  let format = { rate: 8000, channels: 1 };
  let metadataSeen = false;
  console.log(`[${id}] connected from ${req.socket.remoteAddress} ${req.url}`);
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString();
      if (!metadataSeen) {
        metadataSeen = true;
        format = formatOf(text);
        console.log(`[${id}] metadata ${text.slice(0, 200)} -> ${format.rate} Hz, ${format.channels} channel(s)`);
      } else {
        console.log(`[${id}] text ${text.slice(0, 200)}`);
      }
      return;
    }
    fs.writeSync(fd, data);
    bytes += data.length;
    // play it back: binary L16 at the same rate (mono), as the gateway accepts
    if (echo && format.channels === 1) ws.send(data, { binary: true });
  });
  ws.on('close', (code) => {
    fs.writeSync(fd, wavHeader(bytes, format.rate, format.channels), 0, 44, 0);
    fs.closeSync(fd);
    console.log(`[${id}] closed (${code}); ${bytes} bytes -> ${file}`);
  });
});
console.log(`tap server on ws://0.0.0.0:${port}, recording to ${dir}${echo ? ', echoing audio back' : ''}`);
