import { parseMessage } from '../../dist/server/sip/parser.js';
import { makeResponse } from '../../dist/server/sip/reply.js';
const buf = Buffer.from(`REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1\r\nMax-Forwards: 70\r\nFrom: <sip:user000001@127.0.0.1>;tag=1SIPpTag\r\nTo: <sip:user000001@127.0.0.1>\r\nCall-ID: 1-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:user000001@127.0.0.1:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n`);
function bench(name, fn, N=200000) { for (let i=0;i<20000;i++) fn(); const t=process.hrtime.bigint(); for (let i=0;i<N;i++) fn(); console.log(name, (Number(process.hrtime.bigint()-t)/N/1000).toFixed(2), 'µs'); }
let m;
bench('parseMessage', () => { m = parseMessage(buf).message; });
bench('makeResponse+toBuffer', () => makeResponse(m, 200, { headers: [['Contact','<sip:user000001@127.0.0.1:5061>;expires=3600'],['Date','Mon, 23 Nov 2026 13:48:00 GMT']] }).toBuffer());
bench('Buffer.from(str)', () => Buffer.from('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1\r\nFrom: <sip:user000001@127.0.0.1>;tag=1SIPpTag\r\nTo: <sip:user000001@127.0.0.1>;tag=abc\r\nCall-ID: 1-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\n\r\n', 'latin1'));
bench('toString latin1', () => buf.toString('latin1'));
bench('date', () => new Date().toUTCString());
