/*
 * The taps bench's tap server as one small native process (bench/taps.bench.ts compiles it with
 * `cc` when there is one, else it uses the same server in Node with `ws`): a WebSocket server
 * (RFC 6455) that sends every binary message back and times each one's arrival, so that
 * neither its own cost nor its own scheduling delays are what the bench measures.
 *
 *   ws-echo
 *
 * Listens on 127.0.0.1 (a free port), prints `port P`, then reads commands on stdin:
 *   start   forget what was measured; from now on record each binary message's deviation
 *           of its inter-arrival from 20 ms (per connection) and RFC 3550 jitter (§6.4.1)
 *   stop    prints `report frames=N p50=MS p99=MS max=MS jitter=MS jitterMax=MS loopMax=MS clock=C`
 *           (loopMax: the longest time this server spent handling one batch of events)
 *   (end of input) exits
 * Text messages are read and ignored, pings answered, a close echoed. One thread, epoll.
 *
 * A frame's arrival is the kernel's receive timestamp of the read that completed it
 * (SO_TIMESTAMPNS, `clock=kernel` in the report): on loopback that is when the gateway's write
 * reached this socket, so what is measured is the gateway's pacing, not when this process got
 * a core (it shares the machine with the gateway, its mediasoup worker and the phones). Reads
 * are sized to the last frame's length, so in steady state one read is one frame with its own
 * timestamp. Where the kernel gives none, the time epoll_wait returned (`clock=process`).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-1 (FIPS 180-1), for Sec-WebSocket-Accept only */
static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  unsigned char *m = calloc(total, 1);
  memcpy(m, msg, len);
  m[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 | (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
    for (int i = 16; i < 80; i++) {
      uint32_t x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = x << 1 | x >> 31;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else f = b ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = (a << 5 | a >> 27) + f + e + k + w[i];
      e = d, d = c, c = b << 30 | b >> 2, b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  free(m);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *in, int n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int o = 0;
  for (int i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

/* ---- connections */
#define INBUF (1 << 17)
typedef struct {
  int fd;
  int open; /* handshake done */
  unsigned char *in;
  size_t len;
  unsigned char *out; /* what a full socket buffer did not take yet */
  size_t outLen, outCap;
  double last, j, sum;
  long n;
  size_t frameLen; /* length of the last whole frame: the next read asks for that much */
  int wantOut;     /* EPOLLOUT is asked for (something waits in out) */
} Conn;

static double nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int measuring = 0;
static int kernelClock = 0; /* some read carried a kernel timestamp */
static double *dev = NULL;
static size_t nDev = 0, capDev = 0;
static double loopMax = 0;
static Conn **conns = NULL;
static int ep = -1;

/* level-triggered: EPOLLIN always, EPOLLOUT only while something waits to be written */
static void watchOut(Conn *c) {
  int want = c->outLen > 0;
  if (want == c->wantOut) return;
  struct epoll_event e = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
  c->wantOut = want;
}

/* one read of at most `max` bytes; *t becomes its kernel receive time when there is one */
static ssize_t readStamped(Conn *c, size_t max, double *t) {
  struct iovec iov = {.iov_base = c->in + c->len, .iov_len = max};
  union {
    char buf[CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr align;
  } ctl;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t r = recvmsg(c->fd, &m, 0);
  if (r <= 0) return r;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(h), sizeof ts);
      *t = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
      kernelClock = 1;
    }
  }
  return r;
}
static int nConns = 0, capConns = 0;

static void sendAll(Conn *c, const unsigned char *p, size_t n) {
  if (c->outLen == 0) {
    ssize_t w = write(c->fd, p, n);
    if (w == (ssize_t)n) return;
    if (w < 0) w = 0;
    p += w;
    n -= (size_t)w;
  }
  if (c->outLen + n > c->outCap) {
    c->outCap = (c->outLen + n) * 2;
    c->out = realloc(c->out, c->outCap);
  }
  memcpy(c->out + c->outLen, p, n);
  c->outLen += n;
}

static void flush(Conn *c) {
  if (c->outLen == 0) return;
  ssize_t w = write(c->fd, c->out, c->outLen);
  if (w <= 0) return;
  memmove(c->out, c->out + w, c->outLen - (size_t)w);
  c->outLen -= (size_t)w;
}

static void frameOut(Conn *c, int opcode, const unsigned char *p, size_t n) {
  unsigned char h[10];
  size_t hl;
  h[0] = (unsigned char)(0x80 | opcode);
  if (n < 126) h[1] = (unsigned char)n, hl = 2;
  else if (n < 65536) h[1] = 126, h[2] = (unsigned char)(n >> 8), h[3] = (unsigned char)n, hl = 4;
  else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  static unsigned char buf[INBUF + 10];
  if (n <= INBUF) {
    memcpy(buf, h, hl);
    memcpy(buf + hl, p, n);
    sendAll(c, buf, hl + n);
  } else {
    sendAll(c, h, hl);
    sendAll(c, p, n);
  }
}

/* returns 0 to close */
static int handshake(Conn *c) {
  c->in[c->len < INBUF ? c->len : INBUF - 1] = 0;
  char *end = strstr((char *)c->in, "\r\n\r\n");
  if (!end) return c->len < INBUF - 1;
  char *k = strcasestr((char *)c->in, "Sec-WebSocket-Key:");
  if (!k) return 0;
  k += 18;
  while (*k == ' ') k++;
  char key[128];
  int kl = 0;
  while (k[kl] && k[kl] != '\r' && kl < 60) key[kl] = k[kl], kl++;
  strcpy(key + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  unsigned char dig[20];
  sha1((unsigned char *)key, strlen(key), dig);
  char acc[32];
  base64(dig, 20, acc);
  char resp[256];
  int rl = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
  sendAll(c, (unsigned char *)resp, (size_t)rl);
  size_t used = (size_t)(end + 4 - (char *)c->in);
  memmove(c->in, c->in + used, c->len - used);
  c->len -= used;
  c->open = 1;
  return 1;
}

/* returns 0 to close */
static int frames(Conn *c, double t) {
  size_t off = 0;
  for (;;) {
    unsigned char *p = c->in + off;
    size_t avail = c->len - off;
    if (avail < 2) break;
    int opcode = p[0] & 15, masked = p[1] >> 7;
    uint64_t n = p[1] & 127;
    size_t hl = 2;
    if (n == 126) {
      if (avail < 4) break;
      n = (uint64_t)p[2] << 8 | p[3], hl = 4;
    } else if (n == 127) {
      if (avail < 10) break;
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | p[2 + i];
      hl = 10;
    }
    if (n > INBUF - 14) return 0;
    size_t need = hl + (masked ? 4 : 0) + n;
    if (avail < need) break;
    unsigned char *data = p + hl + (masked ? 4 : 0);
    if (opcode == 2) c->frameLen = need;
    if (masked)
      for (uint64_t i = 0; i < n; i++) data[i] ^= p[hl + (i & 3)];
    if (opcode == 2) {
      if (c->last >= 0) {
        double d = t - c->last - 20;
        if (d < 0) d = -d;
        c->j += (d - c->j) / 16;
        if (measuring) {
          if (nDev == capDev) capDev = capDev ? capDev * 2 : 1 << 16, dev = realloc(dev, capDev * sizeof *dev);
          dev[nDev++] = d;
          c->sum += c->j;
          c->n++;
        }
      }
      c->last = t;
      frameOut(c, 2, data, (size_t)n);
    } else if (opcode == 9) {
      frameOut(c, 10, data, (size_t)n);
    } else if (opcode == 8) {
      frameOut(c, 8, data, (size_t)n);
      return 0;
    }
    off += need;
  }
  memmove(c->in, c->in + off, c->len - off);
  c->len -= off;
  return 1;
}

static void closeConn(Conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  for (int i = 0; i < nConns; i++)
    if (conns[i] == c) {
      conns[i] = conns[--nConns];
      break;
    }
  free(c->in);
  free(c->out);
  free(c);
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(void) {
  qsort(dev, nDev, sizeof *dev, cmpd);
  double p50 = nDev ? dev[(size_t)(0.5 * nDev)] : 0, p99 = nDev ? dev[nDev - 1 < (size_t)(0.99 * nDev) ? nDev - 1 : (size_t)(0.99 * nDev)] : 0, mx = nDev ? dev[nDev - 1] : 0;
  double js = 0, jm = 0;
  int jn = 0;
  for (int i = 0; i < nConns; i++)
    if (conns[i]->n > 0) {
      double m = conns[i]->sum / conns[i]->n;
      js += m, jn++;
      if (m > jm) jm = m;
    }
  printf("report frames=%zu p50=%.3f p99=%.3f max=%.3f jitter=%.3f jitterMax=%.3f loopMax=%.3f clock=%s\n", nDev, p50, p99, mx, jn ? js / jn : 0, jm, loopMax, kernelClock ? "kernel" : "process");
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc > 1) {
    fprintf(stderr, "usage: ws-echo (see the source's header)\n");
    return 2;
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) || getsockname(ls, (struct sockaddr *)&a, &al)) {
    perror("ws-echo: listen");
    return 1;
  }
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);
  ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  Conn stdinMark;
  ev.data.ptr = &stdinMark;
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
  struct epoll_event evs[256];
  char cmd[256];
  size_t cmdLen = 0;
  for (;;) {
    int k = epoll_wait(ep, evs, 256, -1);
    if (k < 0 && errno == EINTR) continue;
    double t = nowMs();
    for (int i = 0; i < k; i++) {
      Conn *c = evs[i].data.ptr;
      if (c == NULL) {
        for (;;) {
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
          Conn *n = calloc(1, sizeof *n);
          n->fd = fd;
          n->in = malloc(INBUF);
          n->last = -1;
          if (nConns == capConns) capConns = capConns ? capConns * 2 : 1024, conns = realloc(conns, capConns * sizeof *conns);
          conns[nConns++] = n;
          struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = n};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
        }
      } else if (c == &stdinMark) {
        ssize_t r = read(0, cmd + cmdLen, sizeof cmd - 1 - cmdLen);
        if (r <= 0) return 0;
        cmdLen += (size_t)r;
        char *nl;
        while ((nl = memchr(cmd, '\n', cmdLen))) {
          *nl = 0;
          if (strcmp(cmd, "start") == 0) {
            nDev = 0;
            loopMax = 0;
            for (int j = 0; j < nConns; j++) conns[j]->sum = 0, conns[j]->n = 0;
            measuring = 1;
          } else if (strcmp(cmd, "stop") == 0) {
            measuring = 0;
            report();
          }
          size_t used = (size_t)(nl + 1 - cmd);
          memmove(cmd, nl + 1, cmdLen - used);
          cmdLen -= used;
        }
        if (cmdLen == sizeof cmd - 1) cmdLen = 0;
      } else {
        if (evs[i].events & EPOLLOUT) flush(c);
        int alive = 1;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          /* one read per readiness (level-triggered: what is left is reported again), of one
             frame's length once one was seen, so that each frame has its own timestamp */
          size_t room = INBUF - c->len, max = room;
          if (c->open && c->frameLen > c->len && c->frameLen - c->len < room) max = c->frameLen - c->len;
          double tr = t;
          ssize_t r = readStamped(c, max, &tr);
          if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) alive = 0;
          else if (r > 0) {
            c->len += (size_t)r;
            if (!c->open && !handshake(c)) alive = 0;
            if (alive && c->open && !frames(c, tr)) alive = 0;
          }
        }
        if (alive) watchOut(c);
        if (!alive) closeConn(c);
      }
    }
    double spent = nowMs() - t;
    if (measuring && spent > loopMax) loopMax = spent;
  }
}
