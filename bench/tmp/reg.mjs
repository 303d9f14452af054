import { parseMessage } from '../../dist/server/sip/parser.js';
import { Registrar } from '../../dist/server/registrar/registrar.js';
import { MemoryLocationStore } from '../../dist/server/registrar/location-store.js';
const N=100000;
const users=[]; for (let i=1;i<=N;i++) users.push({username:'user'+String(i).padStart(6,'0'), password:'anchors'});
const r = new Registrar(new MemoryLocationStore(), {authenticate:false,minExpires:60,maxExpires:7200,defaultExpires:3600,nonceTtl:300,algorithms:['MD5'],realm:null}, users);
const src = { transport:'udp', address:'127.0.0.1', port:5061, localAddress:'127.0.0.1', localPort:5060, flowId:null };
const msgs=[]; for (let i=1;i<=N;i++){ const u='user'+String(i).padStart(6,'0'); const m=parseMessage(Buffer.from(`REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-${i}\r\nMax-Forwards: 70\r\nFrom: <sip:${u}@127.0.0.1>;tag=${i}SIPpTag\r\nTo: <sip:${u}@127.0.0.1>\r\nCall-ID: ${i}-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:${u}@127.0.0.1:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n`)).message; m.source=src; msgs.push(m); }
let t=process.hrtime.bigint();
for (let i=0;i<N;i++) await r.register(msgs[i], 0);
console.log('register (new bindings)', (Number(process.hrtime.bigint()-t)/N/1000).toFixed(2),'µs');
t=process.hrtime.bigint();
for (let i=0;i<N;i++) { msgs[i].headers = msgs[i].headers.map(h=>h.key==='cseq'?{...h,value:'2 REGISTER'}:h); }
for (let i=0;i<N;i++) await r.register(msgs[i], 0);
console.log('register (refresh)', (Number(process.hrtime.bigint()-t)/N/1000).toFixed(2),'µs');
t=process.hrtime.bigint();
for (let i=0;i<N;i++) parseMessage(Buffer.from(`REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-${i}\r\nMax-Forwards: 70\r\nFrom: <sip:user${i}@127.0.0.1>;tag=${i}SIPpTag\r\nTo: <sip:user${i}@127.0.0.1>\r\nCall-ID: ${i}-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:user${i}@127.0.0.1:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n`));
console.log('parse (distinct msgs)', (Number(process.hrtime.bigint()-t)/N/1000).toFixed(2),'µs');
