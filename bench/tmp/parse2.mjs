import { parseMessage } from '../../dist/server/sip/parser.js';
const N=200000; const bufs=[];
for (let i=0;i<N;i++) bufs.push(Buffer.from(`REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-${i}\r\nMax-Forwards: 70\r\nFrom: <sip:user${i}@127.0.0.1>;tag=${i}SIPpTag\r\nTo: <sip:user${i}@127.0.0.1>\r\nCall-ID: ${i}-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:user${i}@127.0.0.1:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n`));
for (let r=0;r<3;r++){ const t=process.hrtime.bigint(); for (let i=0;i<N;i++) parseMessage(bufs[i]); console.log('parse', (Number(process.hrtime.bigint()-t)/N/1000).toFixed(2),'µs'); }
