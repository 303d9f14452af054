import pino from 'pino';
import { buildConfig } from '/work/main/dist/server/config/load.js';
import { startGateway } from '/work/main/dist/server/gateway.js';
const N = 30000;
const users=[]; for (let i=1;i<=N;i++) users.push({username:'user'+String(i).padStart(6,'0'), password:'anchors'});
const gw = await startGateway(buildConfig({sip:{advertise:'127.0.0.1',udp:{address:'127.0.0.1',port:0}},http:{address:'127.0.0.1',port:0},registrar:{store:{type:'memory'}, authenticate: process.argv[2]==='auth'},users,log:{level:'warn'}}), pino({level:'warn'}));
// capture sends
let last = null; let sends = 0;
gw.transports.send = (buf, dest) => { last = buf; sends++; return true; };
const src = { transport:'udp', address:'127.0.0.1', port:5061, localAddress:'127.0.0.1', localPort:5060, flowId:null };
const { createHash } = await import('node:crypto');
const md5 = s => createHash('md5').update(s).digest('hex');
function reg(u, i, cseq, auth) {
  return Buffer.from(`REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-${i}-${cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:${u}@127.0.0.1>;tag=${i}SIPpTag\r\nTo: <sip:${u}@127.0.0.1>\r\nCall-ID: ${i}-1@127.0.0.1\r\nCSeq: ${cseq} REGISTER\r\nContact: <sip:${u}@127.0.0.1:5061>\r\n${auth}Expires: 3600\r\nContent-Length: 0\r\n\r\n`);
}
const flush = () => new Promise(r => setImmediate(r));
const t0 = process.cpuUsage(); const w0 = performance.now();
const bufs=[]; for (let i=1;i<=N;i++) bufs.push(reg('user'+String(i).padStart(6,'0'),i,1,''));
if (process.argv[2]!=='auth') { const t1=process.cpuUsage(); for (let i=0;i<N;i++) { gw.stack.receive(bufs[i], src); if (i%100===99) await flush(); } while (sends<N) await flush(); const c1=process.cpuUsage(t1); console.log('batched µs per REGISTER', ((c1.user+c1.system)/N).toFixed(1)); }
for (let i=1;i<=N && process.argv[2]==='auth';i++) {
  const u = 'user'+String(i).padStart(6,'0');
  gw.stack.receive(reg(u,i,1,''), src); await flush();
  if (process.argv[2]==='auth') {
    const ch = last.toString(); const nonce = /nonce="([^"]+)"/.exec(ch)[1];
    const ha1 = md5(`${u}:127.0.0.1:anchors`), ha2 = md5('REGISTER:sip:127.0.0.1');
    const resp = md5(`${ha1}:${nonce}:00000001:abc:auth:${ha2}`);
    gw.stack.receive(reg(u,i,2,`Authorization: Digest username="${u}", realm="127.0.0.1", nonce="${nonce}", uri="sip:127.0.0.1", response="${resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"\r\n`), src); await flush();
  }
}
const c = process.cpuUsage(t0);
console.log(process.argv[2]||'noauth', 'µs per registration (incl. client-side md5):', ((c.user+c.system)/N).toFixed(1), 'sends', sends, 'last', last.toString().split('\r\n')[0]);
await gw.close();
