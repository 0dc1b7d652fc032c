/* loadgen: drives a REG/ACK relay on loopback and reports one JSON line on stdout.
 * Modes: flow (N sessions, both peers send), gso (one direction, UDP_SEGMENT out, UDP_GRO in),
 * pingpong (RTT at a low rate), register (idle sessions for memory). flow and gso fork one
 * worker per ~8000 sessions (the fd limit is per process); the parent prints phase lines
 * (phase:measure, phase:stop, phase:done) at the shared absolute times so a caller can sample
 * the relay's /proc counters over exactly the measured window. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadgen.h"

#define PEERS_PER_WORKER 16000

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode flow|gso|pingpong|register --relay IP:PORT [--direct] [--sessions N]\n"
          "  [--size BYTES] [--rate PPS|0] [--warmup S] [--duration S] [--drain S] [--batch N]\n"
          "  [--gso-segs N] [--ip-base N] [--peers-per-ip N] [--wave N] [--reg-timeout S]\n");
  exit(2);
}

static void parse(int argc, char **argv, config_t *c) {
  *c = (config_t){.mode = "flow", .sessions = 1, .size = 64, .warmup = 0.5, .duration = 2, .drain = 0.2,
                  .batch = 32, .gso_segs = 16, .ip_base = 1, .peers_per_ip = 1, .wave = 2000, .reg_timeout = 20};
  c->relay.sin_family = AF_INET;
  int have_relay = 0;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(k, "--direct") == 0) { c->direct = 1; continue; }
    if (!v) usage();
    i++;
    if (strcmp(k, "--mode") == 0) c->mode = v;
    else if (strcmp(k, "--relay") == 0) {
      char host[64];
      const char *colon = strrchr(v, ':');
      if (!colon || (size_t)(colon - v) >= sizeof host) usage();
      memcpy(host, v, (size_t)(colon - v));
      host[colon - v] = 0;
      if (inet_pton(AF_INET, host, &c->relay.sin_addr) != 1) usage();
      c->relay.sin_port = htons((uint16_t)atoi(colon + 1));
      have_relay = 1;
    } else if (strcmp(k, "--sessions") == 0) c->sessions = atoi(v);
    else if (strcmp(k, "--size") == 0) c->size = atoi(v);
    else if (strcmp(k, "--rate") == 0) c->rate = atof(v);
    else if (strcmp(k, "--warmup") == 0) c->warmup = atof(v);
    else if (strcmp(k, "--duration") == 0) c->duration = atof(v);
    else if (strcmp(k, "--drain") == 0) c->drain = atof(v);
    else if (strcmp(k, "--batch") == 0) c->batch = atoi(v);
    else if (strcmp(k, "--gso-segs") == 0) c->gso_segs = atoi(v);
    else if (strcmp(k, "--ip-base") == 0) c->ip_base = atoi(v);
    else if (strcmp(k, "--peers-per-ip") == 0) c->peers_per_ip = atoi(v);
    else if (strcmp(k, "--wave") == 0) c->wave = atoi(v);
    else if (strcmp(k, "--reg-timeout") == 0) c->reg_timeout = atof(v);
    else usage();
  }
  if ((!have_relay && !c->direct) || c->sessions < 1 || c->size < 2 || c->size > 65000 || c->batch < 1 ||
      c->gso_segs < 1 || c->gso_segs > 64 || c->duration <= 0 || c->peers_per_ip < 1)
    usage();
  c->nonce = (uint32_t)(now_ns() ^ ((uint64_t)getpid() << 16));
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {}
}

static int read_full(int fd, void *buf, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t r = read(fd, (char *)buf + off, len - off);
    if (r <= 0) return -1;
    off += (size_t)r;
  }
  return 0;
}

static void worker(const config_t *cfg, int s0, int s1, int up, int down, double rate) {
  int count = (s1 - s0) * 2;
  peer_t *peers = calloc((size_t)count, sizeof *peers);
  totals_t t = {0};
  /* Few peers take the whole flow: give them room for bursts (bulk GSO flows arrive fastest). */
  int rcvbuf = count <= 4 ? 16 << 20 : count <= 256 ? 4 << 20 : 0;
  if (peers_open(peers, count, (uint32_t)s0 * 2, cfg, rcvbuf) != 0) exit(1);
  peers_register(peers, count, (uint32_t)s0, cfg, &t);
  uint64_t t0;
  if (write(up, &t, sizeof t) != sizeof t || read_full(down, &t0, sizeof t0) != 0) exit(1);
  flow_run(peers, count, cfg, rate, t0, &t, strcmp(cfg->mode, "gso") == 0);
  if (write(up, &t, sizeof t) != sizeof t) exit(1);
  exit(0);
}

static int run_flow(const config_t *cfg) {
  int procs = (cfg->sessions * 2 + PEERS_PER_WORKER - 1) / PEERS_PER_WORKER;
  int up[procs], down[procs];
  pid_t pids[procs];
  for (int w = 0; w < procs; w++) {
    int u[2], d[2];
    if (pipe(u) != 0 || pipe(d) != 0) return 1;
    int s0 = (int)((long)cfg->sessions * w / procs), s1 = (int)((long)cfg->sessions * (w + 1) / procs);
    fflush(stdout);
    pids[w] = fork();
    if (pids[w] == 0) {
      close(u[0]);
      close(d[1]);
      worker(cfg, s0, s1, u[1], d[0], cfg->rate * (s1 - s0) / cfg->sessions);
    }
    close(u[1]);
    close(d[0]);
    up[w] = u[0];
    down[w] = d[1];
  }
  totals_t sum = {0}, part;
  int failed = 0;
  for (int w = 0; w < procs; w++) {
    if (read_full(up[w], &part, sizeof part) != 0) { failed = 1; continue; }
    sum.reg_acked += part.reg_acked;
    sum.reg_refused += part.reg_refused;
    sum.reg_timeout += part.reg_timeout;
    if (part.reg_ns > sum.reg_ns) sum.reg_ns = part.reg_ns;
  }
  if (failed) {
    for (int w = 0; w < procs; w++) kill(pids[w], SIGKILL);
    printf("{\"mode\":\"%s\",\"error\":\"worker failed to open or register peers\"}\n", cfg->mode);
    return 1;
  }
  uint64_t t0 = now_ns() + 20000000ull;
  for (int w = 0; w < procs; w++)
    if (write(down[w], &t0, sizeof t0) != sizeof t0) return 1;
  uint64_t t_measure = t0 + (uint64_t)(cfg->warmup * 1e9), t_stop = t_measure + (uint64_t)(cfg->duration * 1e9);
  sleep_until(t_measure);
  printf("phase:measure\n");
  fflush(stdout);
  sleep_until(t_stop);
  printf("phase:stop\n");
  fflush(stdout);
  for (int w = 0; w < procs; w++) {
    if (read_full(up[w], &part, sizeof part) != 0) { failed = 1; continue; }
    sum.sent += part.sent;
    sum.send_errors += part.send_errors;
    sum.delivered += part.delivered;
    sum.delivered_bytes += part.delivered_bytes;
    sum.delivered_segments += part.delivered_segments;
    sum.bad += part.bad;
    sum.gen_rx_drops += part.gen_rx_drops;
    waitpid(pids[w], NULL, 0);
  }
  printf("phase:done\n");
  double d = cfg->duration;
  printf("{\"mode\":\"%s\",\"sessions\":%d,\"size\":%d,\"rate\":%.0f,\"duration\":%.3f,\"workers\":%d,"
         "\"reg\":{\"acked\":%llu,\"refused\":%llu,\"timeout\":%llu,\"ms\":%.1f},\"sent\":%llu,\"delivered\":%llu,"
         "\"offered_pps\":%.0f,\"delivered_pps\":%.0f,\"loss\":%.6f,\"delivered_bytes\":%llu,"
         "\"delivered_Bps\":%.0f,\"gro_receives\":%llu,\"send_errors\":%llu,\"bad\":%llu,\"gen_rx_drops\":%llu%s}\n",
         cfg->mode, cfg->sessions, cfg->size, cfg->rate, d, procs, (unsigned long long)sum.reg_acked,
         (unsigned long long)sum.reg_refused, (unsigned long long)sum.reg_timeout, (double)sum.reg_ns / 1e6,
         (unsigned long long)sum.sent, (unsigned long long)sum.delivered, (double)sum.sent / d,
         (double)sum.delivered / d, sum.sent ? 1.0 - (double)sum.delivered / (double)sum.sent : 0.0,
         (unsigned long long)sum.delivered_bytes, (double)sum.delivered_bytes / d,
         (unsigned long long)sum.delivered_segments, (unsigned long long)sum.send_errors, (unsigned long long)sum.bad,
         (unsigned long long)sum.gen_rx_drops, failed ? ",\"error\":\"a worker died\"" : "");
  return failed;
}

int main(int argc, char **argv) {
  config_t cfg;
  parse(argc, argv, &cfg);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(cfg.mode, "flow") == 0 || strcmp(cfg.mode, "gso") == 0) return run_flow(&cfg);
  if (strcmp(cfg.mode, "pingpong") == 0) return pingpong_main(&cfg);
  if (strcmp(cfg.mode, "register") == 0) return register_main(&cfg);
  usage();
}
