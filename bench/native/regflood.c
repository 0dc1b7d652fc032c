/* REGs from forged sources, for bench/sessions.ts: registers sessions [first, first+count) with
 * two peers each, every peer its own source address (src-base + 2k and src-base + 2k + 1, one fixed
 * port), through a raw socket (IPPROTO_RAW, the IPv4 and UDP headers written here) and sendmmsg
 * batches. Datagram d of the range is peer d % 2 of session first + d / 2. Paced at --rate
 * datagrams/s (0 = flat out), stopped after --duration seconds if given. With --stdin it sends
 * nothing by itself: each line "<d> <n> <rate>" sends datagrams [d, d+n) of the range at that rate
 * and answers "ok <sent>", so the caller paces by what the relay took. Session ids look like UUIDs:
 * <tag>-0000-4000-8000-<k as 12 hex digits>. The relay's answers are taken in, never read, by one
 * socket on the wildcard address and the sources' port (see open_sink). Prints one JSON line at
 * the end. Needs root. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define ID_LEN 36
#define PACKET_LEN (20 + 8 + 4 + ID_LEN + 1) /* IPv4 + UDP + "REG:" + id + "\n" */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void) {
  fprintf(stderr,
          "usage: regflood --relay 127.0.0.1:PORT --src-base A.B.C.D --first K --count N\n"
          "                [--rate DGRAMS_PER_S (0 = flat out)] [--duration S] [--tag HEX8] [--src-port P] [--batch B]\n"
          "                [--stdin]\n");
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* One REG datagram, headers included, for peer `side` (0 or 1) of session k. */
static void build(uint8_t *p, uint32_t tag, uint64_t k, int side, uint32_t src_base, uint16_t src_port,
                  const struct sockaddr_in *relay) {
  uint32_t src = htonl(src_base + (uint32_t)(2 * k + (uint64_t)side));
  memset(p, 0, 28);
  p[0] = 0x45;
  put16(p + 2, PACKET_LEN);
  p[8] = 64;
  p[9] = IPPROTO_UDP; /* checksum and id left 0: the kernel fills them in */
  memcpy(p + 12, &src, 4);
  memcpy(p + 16, &relay->sin_addr, 4);
  put16(p + 20, src_port);
  memcpy(p + 22, &relay->sin_port, 2);
  put16(p + 24, 8 + 4 + ID_LEN + 1); /* UDP checksum 0: none, allowed on IPv4 */
  char text[4 + ID_LEN + 2];
  snprintf(text, sizeof text, "REG:%08x-0000-4000-8000-%012llx\n", tag, (unsigned long long)k);
  memcpy(p + 28, text, 4 + ID_LEN + 1);
}

typedef struct {
  int fd;
  int batch;
  uint32_t tag, src_base;
  uint16_t src_port;
  uint64_t first; /* first session of the range */
  struct sockaddr_in relay;
  uint64_t errors;
} sender_t;

static uint8_t packets[MAX_BATCH][PACKET_LEN];
static struct iovec iov[MAX_BATCH];
static struct mmsghdr msgs[MAX_BATCH];

/* Sends datagrams [d0, d0 + n) of the range at `rate` (0 = flat out) until `stop_at`; returns how
 * many went out. */
static uint64_t send_range(sender_t *s, uint64_t d0, uint64_t n, double rate, uint64_t stop_at) {
  uint64_t sent = 0, start = now_ns();
  while (sent < n) {
    uint64_t now = now_ns();
    if (now >= stop_at) break;
    uint64_t k = n - sent;
    if (k > (uint64_t)s->batch) k = (uint64_t)s->batch;
    if (rate > 0) {
      uint64_t due = (uint64_t)((double)(now - start) / 1e9 * rate) + 1;
      if (due <= sent) {
        double wait_ns = ((double)(sent + 1) / rate) * 1e9 - (double)(now - start);
        if (wait_ns > 1e6) wait_ns = 1e6;
        struct timespec ts = {0, wait_ns > 20000 ? (long)wait_ns : 20000};
        nanosleep(&ts, NULL);
        continue;
      }
      if (k > due - sent) k = due - sent;
    }
    for (uint64_t i = 0; i < k; i++) {
      uint64_t d = d0 + sent + i;
      build(packets[i], s->tag, s->first + d / 2, (int)(d % 2), s->src_base, s->src_port, &s->relay);
    }
    int r = sendmmsg(s->fd, msgs, (unsigned)k, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      s->errors++;
      if (errno == ENOBUFS || errno == EAGAIN) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
        continue;
      }
      printf("{\"error\":\"sendmmsg: %s\"}\n", strerror(errno));
      exit(1);
    }
    sent += (uint64_t)r;
  }
  return sent;
}

/* Real peers receive the relay's answers on their own hosts. On loopback an answer to an address
 * no socket listens on makes the kernel try an ICMP port unreachable, on the relay's core, per
 * answer (some 8 % of that core in a REG flood): a cost no deployed relay pays. A socket bound to
 * the wildcard address on the sources' port takes every answer in instead; it is never read, so
 * once its small buffer is full the kernel drops the rest at the socket (cheap). SO_REUSEPORT: two
 * generators may run at once. -1 when the port cannot be had (the answers then cost as before). */
static int open_sink(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  int one = 1, rcvbuf = 4096;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {.s_addr = htonl(INADDR_ANY)}};
  if (bind(fd, (struct sockaddr *)&any, sizeof any) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  sender_t s = {.batch = 64, .tag = 0x5e55a000, .src_port = 40000, .relay = {.sin_family = AF_INET}};
  struct in_addr base = {0};
  uint64_t count = 0;
  double rate = 0, duration = 0;
  int have_relay = 0, have_base = 0, from_stdin = 0;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "--stdin")) {
      from_stdin = 1;
      continue;
    }
    if (i + 1 >= argc) return usage(), 2;
    const char *v = argv[++i];
    if (!strcmp(k, "--relay")) {
      char host[64];
      const char *colon = strrchr(v, ':');
      if (!colon || (size_t)(colon - v) >= sizeof host) return usage(), 2;
      memcpy(host, v, (size_t)(colon - v));
      host[colon - v] = 0;
      if (inet_pton(AF_INET, host, &s.relay.sin_addr) != 1) return usage(), 2;
      s.relay.sin_port = htons((uint16_t)atoi(colon + 1));
      have_relay = 1;
    } else if (!strcmp(k, "--src-base")) {
      if (inet_pton(AF_INET, v, &base) != 1) return usage(), 2;
      have_base = 1;
    } else if (!strcmp(k, "--first")) s.first = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--count")) count = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--rate")) rate = atof(v);
    else if (!strcmp(k, "--duration")) duration = atof(v);
    else if (!strcmp(k, "--tag")) s.tag = (uint32_t)strtoul(v, NULL, 16);
    else if (!strcmp(k, "--src-port")) s.src_port = (uint16_t)atoi(v);
    else if (!strcmp(k, "--batch")) s.batch = atoi(v);
    else return usage(), 2;
  }
  if (!have_relay || !have_base || count == 0) return usage(), 2;
  if (s.batch < 1) s.batch = 1;
  if (s.batch > MAX_BATCH) s.batch = MAX_BATCH;
  s.src_base = ntohl(base.s_addr);

  int sink = open_sink(s.src_port);
  s.fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (s.fd < 0) {
    printf("{\"error\":\"raw socket: %s (needs root)\"}\n", strerror(errno));
    return 1;
  }
  int sndbuf = 4 << 20;
  setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  for (int i = 0; i < MAX_BATCH; i++) {
    iov[i].iov_base = packets[i];
    iov[i].iov_len = PACKET_LEN;
    msgs[i].msg_hdr = (struct msghdr){.msg_name = &s.relay, .msg_namelen = sizeof s.relay, .msg_iov = &iov[i], .msg_iovlen = 1};
  }

  uint64_t total = 2 * count, sent = 0, start = now_ns();
  if (from_stdin) {
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
      unsigned long long d0 = 0, n = 0;
      double r = 0;
      if (sscanf(line, "%llu %llu %lf", &d0, &n, &r) < 2) continue;
      if (d0 > total) d0 = total;
      if (n > total - d0) n = total - d0;
      uint64_t k = send_range(&s, d0, n, r, UINT64_MAX);
      sent += k;
      printf("ok %llu\n", (unsigned long long)k);
      fflush(stdout);
    }
  } else {
    sent = send_range(&s, 0, total, rate, duration > 0 ? start + (uint64_t)(duration * 1e9) : UINT64_MAX);
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  printf("{\"sent\":%llu,\"sessions\":%llu,\"errors\":%llu,\"seconds\":%.6f,\"rate\":%.1f}\n",
         (unsigned long long)sent, (unsigned long long)(sent / 2), (unsigned long long)s.errors, seconds,
         seconds > 0 ? (double)sent / seconds : 0.0);
  close(s.fd);
  if (sink >= 0) close(sink);
  return 0;
}
