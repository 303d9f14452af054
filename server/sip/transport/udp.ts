/** SIP over UDP (RFC 3261 §18): one socket per configured address. */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Source } from './types.js';

export type Receive = (buf: Buffer, source: Source) => void;

export class UdpTransport {
  private socket: dgram.Socket;
  private boundAddress = '';
  private boundPort = 0;
  private closed = false;

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly receive: Receive,
    private readonly onError: (err: Error) => void,
  ) {
    const type = net.isIPv6(address) ? 'udp6' : 'udp4';
    // We only ever send to IP literals: answer the socket's address lookup at once instead of
    // going through dns.lookup and a nextTick for every datagram.
    this.socket = dgram.createSocket({
      type,
      reuseAddr: false,
      lookup: (host, _opts, cb) => (cb as (e: Error | null, a: string, f: number) => void)(null, host, type === 'udp6' ? 6 : 4),
    });
    this.socket.on('message', (buf, rinfo) => {
      this.receive(buf, {
        transport: 'udp',
        address: rinfo.address,
        port: rinfo.port,
        localAddress: this.boundAddress,
        localPort: this.boundPort,
        flowId: null,
      });
    });
    // ICMP errors and the like: a datagram socket stays usable after them.
    this.socket.on('error', (err) => this.onError(err));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.port, this.address, () => {
        this.socket.off('error', reject);
        const a = this.socket.address();
        this.boundAddress = a.address;
        this.boundPort = a.port;
        // Bursts of REGISTERs outrun the default 208 KiB receive buffer; the kernel caps
        // this at net.core.rmem_max, which is fine.
        try {
          this.socket.setRecvBufferSize(8 * 1024 * 1024);
          this.socket.setSendBufferSize(4 * 1024 * 1024);
        } catch {
          // not fatal: the defaults still work
        }
        resolve();
      });
    });
  }

  get family(): 4 | 6 {
    return net.isIPv6(this.address) ? 6 : 4;
  }

  get localAddress(): string {
    return this.boundAddress;
  }

  get localPort(): number {
    return this.boundPort;
  }

  send(buf: Buffer, port: number, address: string): boolean {
    if (this.closed) return false;
    try {
      this.socket.send(buf, port, address);
      return true;
    } catch {
      return false; // e.g. a port out of range from a forged Via
    }
  }

  close(): Promise<void> {
    this.closed = true;
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
