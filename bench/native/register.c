/* Idle-session load: registers cfg->sessions sessions (two peers each, every peer on its
 * own loopback address) in waves of sockets that are closed afterwards; the relay keeps
 * the sessions until they time out, so its memory can be read while they are idle. */
#include <stdio.h>
#include <stdlib.h>

#include "loadgen.h"

int register_main(const config_t *cfg) {
  int wave = cfg->wave > 0 ? cfg->wave : 2000;
  peer_t *peers = calloc((size_t)wave * 2, sizeof *peers);
  totals_t t = {0};
  uint64_t paired = 0, start = now_ns();
  for (int s = 0; s < cfg->sessions; s += wave) {
    int n = cfg->sessions - s < wave ? cfg->sessions - s : wave;
    if (peers_open(peers, n * 2, (uint32_t)s * 2, cfg, 0) != 0) return 1;
    uint64_t acked_before = t.reg_acked;
    peers_register(peers, n * 2, (uint32_t)s, cfg, &t);
    for (int i = 0; i < n; i++) paired += peers[2 * i].state == 2 && peers[2 * i + 1].state == 2;
    peers_close(peers, n * 2);
    if (t.reg_acked == acked_before) break; /* the relay stopped accepting: do not wait out every wave */
  }
  printf("{\"mode\":\"register\",\"sessions\":%d,\"paired_sessions\":%llu,\"acked_peers\":%llu,"
         "\"refused_peers\":%llu,\"timed_out_peers\":%llu,\"seconds\":%.3f}\n",
         cfg->sessions, (unsigned long long)paired, (unsigned long long)t.reg_acked,
         (unsigned long long)t.reg_refused, (unsigned long long)t.reg_timeout, (double)(now_ns() - start) / 1e9);
  free(peers);
  return 0;
}
