/* Load generator shared declarations. Peers are UDP sockets on distinct loopback addresses
 * (127.<base+k>.x.y), connected to the relay, registered with REG:<uuid>\n. */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H


#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

/* First payload byte looks like a QUIC short header (no observe copies); second is the tag. */
#define PAYLOAD_FIRST 0x40
#define TAG_WARMUP 0
#define TAG_MEASURED 1

typedef struct {
  const char *mode; /* flow | gso | pingpong | register */
  struct sockaddr_in relay;
  int direct;      /* pingpong without relay: peers talk to each other */
  int sessions;
  int size;        /* datagram payload bytes */
  double rate;     /* offered datagrams/s over all peers, 0 = flat out */
  double warmup, duration, drain; /* seconds */
  int batch;       /* datagrams per sendmmsg */
  int gso_segs;    /* gso mode: datagrams per UDP_SEGMENT send */
  int ip_base;     /* second octet of the first peer address */
  int peers_per_ip; /* consecutive peers sharing one address (distinct ports); 1 = every peer its own */
  int wave;        /* register mode: sessions opened at once */
  double reg_timeout;
  uint32_t nonce;  /* makes session ids unique per run */
} config_t;

typedef struct {
  int fd;
  struct sockaddr_in addr;
  int state; /* registration: 0 idle, 1 sent, 2 acked, 3 refused */
  uint64_t sent_at;
} peer_t;

typedef struct {
  uint64_t reg_acked, reg_refused, reg_timeout, reg_ns;
  uint64_t sent, send_errors, delivered, delivered_bytes, delivered_segments, bad, gen_rx_drops;
} totals_t;

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* peers.c */
void peer_address(int ip_base, uint32_t index, struct sockaddr_in *out);
int peers_open(peer_t *peers, int count, uint32_t first_index, const config_t *cfg, int rcvbuf);
void peers_close(peer_t *peers, int count);
/* Registers peers[2k], peers[2k+1] as session first_session+k; fills reg_* totals. */
void peers_register(peer_t *peers, int count, uint32_t first_session, const config_t *cfg, totals_t *t);
uint64_t peer_rx_drops(int fd);

/* flow.c: runs one worker's share between absolute times; gso selects the GSO/GRO variant. */
void flow_run(peer_t *peers, int count, const config_t *cfg, double rate, uint64_t t0, totals_t *t, int gso);

/* pingpong.c: prints its own JSON. */
int pingpong_main(const config_t *cfg);

/* register.c: registers cfg->sessions idle sessions in waves; prints its own JSON. */
int register_main(const config_t *cfg);

#endif
