/* Ping-pong latency: peer A sends a timestamped datagram at a low rate, peer B echoes it
 * back (through the relay both ways), A records the round trip. Sleeps in ppoll between events
 * (so it can run at real-time priority without starving the core); the direct mode measures
 * the same wake-ups without a relay, which is what "added" latency subtracts. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "loadgen.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return (double)v[i] / 1000.0;
}

int pingpong_main(const config_t *cfg) {
  peer_t peers[2];
  totals_t t = {0};
  if (peers_open(peers, 2, 0, cfg, 0) != 0) return 1;
  if (!cfg->direct) {
    peers_register(peers, 2, 0, cfg, &t);
    if (peers[0].state != 2 || peers[1].state != 2) {
      printf("{\"mode\":\"pingpong\",\"error\":\"registration failed\"}\n");
      return 1;
    }
  }
  int size = cfg->size < 16 ? 16 : cfg->size;
  size_t cap = (size_t)(cfg->rate * cfg->duration * 1.2) + 16, n = 0;
  uint64_t *rtt = malloc(cap * sizeof *rtt), sent = 0, recv_a = 0;
  uint8_t out[65536], in[65536];
  memset(out, 0x5a, (size_t)size);
  out[0] = PAYLOAD_FIRST;
  uint64_t t0 = now_ns(), t_measure = t0 + (uint64_t)(cfg->warmup * 1e9);
  uint64_t t_stop = t_measure + (uint64_t)(cfg->duration * 1e9), t_end = t_stop + (uint64_t)(cfg->drain * 1e9);
  uint64_t interval = (uint64_t)(1e9 / (cfg->rate > 0 ? cfg->rate : 1000)), next = t0;
  uint32_t seq = 0;
  for (;;) {
    uint64_t now = now_ns();
    if (now >= t_end) break;
    if (now >= next && now < t_stop) {
      out[1] = now >= t_measure ? TAG_MEASURED : TAG_WARMUP;
      memcpy(out + 4, &seq, 4);
      memcpy(out + 8, &now, 8);
      seq++;
      if (send(peers[0].fd, out, (size_t)size, 0) == size && out[1] == TAG_MEASURED) sent++;
      next += interval;
      if (next < now) next = now + interval;
    }
    struct pollfd pfd[2] = {{.fd = peers[0].fd, .events = POLLIN}, {.fd = peers[1].fd, .events = POLLIN}};
    uint64_t wake = now < t_stop && next < t_end ? next : t_end;
    uint64_t wait = wake > now ? wake - now : 0;
    struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
    if (ppoll(pfd, 2, &ts, NULL) <= 0) continue;
    ssize_t got;
    while ((got = recv(peers[1].fd, in, sizeof in, MSG_DONTWAIT)) > 0) send(peers[1].fd, in, (size_t)got, 0);
    while ((got = recv(peers[0].fd, in, sizeof in, MSG_DONTWAIT)) >= 16) {
      if (in[0] != PAYLOAD_FIRST || in[1] != TAG_MEASURED) continue;
      uint64_t ts;
      memcpy(&ts, in + 8, 8);
      recv_a++;
      if (n < cap) rtt[n++] = now_ns() - ts;
    }
  }
  qsort(rtt, n, sizeof *rtt, cmp_u64);
  double mean = 0;
  for (size_t i = 0; i < n; i++) mean += (double)rtt[i];
  mean = n ? mean / (double)n / 1000.0 : 0;
  printf("{\"mode\":\"pingpong\",\"direct\":%s,\"rate\":%.0f,\"size\":%d,\"duration\":%.3f,\"sent\":%llu,"
         "\"received\":%llu,\"lost\":%llu,\"rtt_us\":{\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f,"
         "\"mean\":%.2f},\"samples\":%zu}\n",
         cfg->direct ? "true" : "false", cfg->rate, size, cfg->duration, (unsigned long long)sent,
         (unsigned long long)recv_a, (unsigned long long)(sent > recv_a ? sent - recv_a : 0), pct_us(rtt, n, 0.5),
         pct_us(rtt, n, 0.99), pct_us(rtt, n, 0.999), n ? (double)rtt[n - 1] / 1000.0 : 0, mean, n);
  peers_close(peers, 2);
  return 0;
}
