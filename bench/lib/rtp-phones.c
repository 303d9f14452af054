/*
 * The taps bench's RTP phones as one small native process (bench/taps.bench.ts compiles it with
 * `cc` when there is one, else it falls back to phones in Node): the load generator must not be
 * what limits the number of taps the gateway holds, nor steal the gateway's cores.
 *
 *   rtp-phones FRAMES_FILE LEGS FIRST_PORT
 *
 * Binds LEGS UDP sockets on 127.0.0.1 from FIRST_PORT up (skipping ports in use), prints
 * `ports P0 P1 ...`, then reads commands on stdin:
 *   go R0 R1 ...   every leg i sends one PCMU packet each 20 ms to 127.0.0.1:Ri, all legs
 *                  from one absolute clock (clock_nanosleep TIMER_ABSTIME: no drift, a late
 *                  wake-up sends what is due); leg i at phase i % PHASES of the 20 ms period
 *                  (2 ms apart), as independent phones are: never all of them in one burst
 *   stop           stops sending and prints `stats sent=S late=L maxLateUs=M`
 *   (end of input) exits
 * FRAMES_FILE holds 100 frames of 160 PCMU bytes: 50 for even legs, 50 for odd legs (a 1 s
 * loop of a tone each). What the gateway sends back is never read: each socket's receive
 * buffer is made small and the kernel drops the rest, so echoed RTP costs this process nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int nlegs;
static int *fds;
static struct sockaddr_in *dst;
static unsigned char frames[100][160];
static volatile int running = 0;
static volatile long long sent = 0, late = 0, maxLateUs = 0;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
#define PHASES 10

static void *sender(void *arg) {
  (void)arg;
  unsigned char pkt[12 + 160];
  uint16_t *seq = calloc(nlegs, sizeof(uint16_t));
  uint32_t *ts = calloc(nlegs, sizeof(uint32_t));
  for (int i = 0; i < nlegs; i++) {
    seq[i] = (uint16_t)(i * 7919);
    ts[i] = (uint32_t)i * 1000u;
  }
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long long step = 0; /* PHASES steps per 20 ms frame */
  for (;;) {
    pthread_mutex_lock(&mu);
    int go = running;
    pthread_mutex_unlock(&mu);
    if (!go) break;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long lateUs = ((long long)(now.tv_sec - next.tv_sec) * 1000000000LL + (now.tv_nsec - next.tv_nsec)) / 1000;
    if (lateUs > 2000) late++;
    if (lateUs > maxLateUs) maxLateUs = lateUs;
    long long frame = step / PHASES;
    for (int i = (int)(step % PHASES); i < nlegs; i += PHASES) {
      pkt[0] = 0x80;
      pkt[1] = frame == 0 ? 0x80 : 0;
      pkt[2] = seq[i] >> 8;
      pkt[3] = seq[i] & 0xff;
      pkt[4] = ts[i] >> 24;
      pkt[5] = (ts[i] >> 16) & 0xff;
      pkt[6] = (ts[i] >> 8) & 0xff;
      pkt[7] = ts[i] & 0xff;
      uint32_t ssrc = 0x10000u + (uint32_t)i;
      pkt[8] = ssrc >> 24;
      pkt[9] = (ssrc >> 16) & 0xff;
      pkt[10] = (ssrc >> 8) & 0xff;
      pkt[11] = ssrc & 0xff;
      memcpy(pkt + 12, frames[(i % 2) * 50 + frame % 50], 160);
      if (sendto(fds[i], pkt, sizeof pkt, MSG_DONTWAIT, (struct sockaddr *)&dst[i], sizeof dst[i]) > 0) sent++;
      seq[i]++;
      ts[i] += 160;
    }
    step++;
    next.tv_nsec += 20000000L / PHASES;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
  }
  free(seq);
  free(ts);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: rtp-phones FRAMES_FILE LEGS FIRST_PORT (see the source's header)\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f || fread(frames, 1, sizeof frames, f) != sizeof frames) {
    fprintf(stderr, "rtp-phones: cannot read 16000 bytes of frames from %s\n", argv[1]);
    return 2;
  }
  fclose(f);
  nlegs = atoi(argv[2]);
  int port = atoi(argv[3]);
  fds = calloc(nlegs, sizeof(int));
  dst = calloc(nlegs, sizeof(struct sockaddr_in));
  printf("ports");
  for (int i = 0; i < nlegs; i++) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int small = 1;  // the kernel's minimum: what comes back is dropped, never read
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (;; port++) {
      if (port > 39999) {
        fprintf(stderr, "rtp-phones: no free port left\n");
        return 1;
      }
      a.sin_port = htons(port);
      if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) break;
    }
    fds[i] = fd;
    printf(" %d", port++);
  }
  printf("\n");
  fflush(stdout);
  char *line = NULL;
  size_t cap = 0;
  pthread_t th;
  int started = 0;
  while (getline(&line, &cap, stdin) > 0) {
    if (strncmp(line, "go ", 3) == 0 && !started) {
      char *p = line + 3;
      for (int i = 0; i < nlegs; i++) {
        dst[i].sin_family = AF_INET;
        dst[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        dst[i].sin_port = htons((uint16_t)strtol(p, &p, 10));
      }
      running = 1;
      started = 1;
      pthread_create(&th, NULL, sender, NULL);
    } else if (strncmp(line, "stop", 4) == 0 && started) {
      pthread_mutex_lock(&mu);
      running = 0;
      pthread_mutex_unlock(&mu);
      pthread_join(th, NULL);
      started = 0;
      printf("stats sent=%lld late=%lld maxLateUs=%lld\n", sent, late, maxLateUs);
      fflush(stdout);
    }
  }
  if (started) {
    pthread_mutex_lock(&mu);
    running = 0;
    pthread_mutex_unlock(&mu);
    pthread_join(th, NULL);
  }
  for (int i = 0; i < nlegs; i++) close(fds[i]);
  return 0;
}
