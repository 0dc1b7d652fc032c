/* The traffic loop of one worker: paced (or flat-out) sendmmsg round-robin over the paired
 * peers, and recvmmsg of whatever epoll reports ready, on one thread so the generator
 * costs one core. Received datagrams are counted, not copied (MSG_TRUNC, tiny buffers). */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define RX_BATCH 64
#define RX_PEEK 16
#define GSO_MSGS 4

typedef struct {
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  uint8_t data[RX_BATCH][RX_PEEK];
  uint8_t ctrl[RX_BATCH][CMSG_SPACE(sizeof(int))];
} rx_ring_t;

static void rx_reset(rx_ring_t *r) {
  for (int i = 0; i < RX_BATCH; i++) {
    r->iov[i] = (struct iovec){r->data[i], RX_PEEK};
    r->msgs[i].msg_hdr = (struct msghdr){
        .msg_iov = &r->iov[i], .msg_iovlen = 1, .msg_control = r->ctrl[i], .msg_controllen = sizeof r->ctrl[i]};
  }
}

static int gro_size(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v;
    }
  return 0;
}

static void drain_socket(int fd, rx_ring_t *r, const config_t *cfg, totals_t *t) {
  for (;;) {
    rx_reset(r);
    int got = recvmmsg(fd, r->msgs, RX_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (got <= 0) return;
    for (int i = 0; i < got; i++) {
      uint32_t len = r->msgs[i].msg_len;
      if (len < 2 || r->data[i][0] != PAYLOAD_FIRST) { t->bad++; continue; }
      if (r->data[i][1] != TAG_MEASURED) continue;
      int seg = gro_size(&r->msgs[i].msg_hdr);
      uint64_t n = seg > 0 ? (len + (uint32_t)seg - 1) / (uint32_t)seg : 1;
      if (seg > 0) t->delivered_segments++;
      if (seg == 0 && len != (uint32_t)cfg->size) t->bad++;
      t->delivered += n;
      t->delivered_bytes += len;
    }
    if (got < RX_BATCH) return;
  }
}

/* Builds the batch for one tag: `msgs` messages over one shared payload. */
static struct mmsghdr *make_batch(const config_t *cfg, int tag, int msgs, int gso) {
  int unit = gso ? cfg->gso_segs : 1;
  size_t len = (size_t)cfg->size * (size_t)unit;
  uint8_t *buf = malloc(len);
  memset(buf, 0x5a, len);
  for (int s = 0; s < unit; s++) {
    buf[(size_t)s * (size_t)cfg->size] = PAYLOAD_FIRST;
    buf[(size_t)s * (size_t)cfg->size + 1] = (uint8_t)tag;
  }
  struct iovec *iov = malloc(sizeof *iov);
  *iov = (struct iovec){buf, len};
  struct mmsghdr *m = calloc((size_t)msgs, sizeof *m);
  for (int i = 0; i < msgs; i++) m[i].msg_hdr = (struct msghdr){.msg_iov = iov, .msg_iovlen = 1};
  return m;
}

void flow_run(peer_t *peers, int count, const config_t *cfg, double rate, uint64_t t0, totals_t *t, int gso) {
  uint64_t t_measure = t0 + (uint64_t)(cfg->warmup * 1e9);
  uint64_t t_stop = t_measure + (uint64_t)(cfg->duration * 1e9);
  uint64_t t_end = t_stop + (uint64_t)(cfg->drain * 1e9);
  int unit = gso ? cfg->gso_segs : 1, msgs = gso ? GSO_MSGS : cfg->batch;
  struct mmsghdr *tx[2] = {make_batch(cfg, TAG_WARMUP, msgs, gso), make_batch(cfg, TAG_MEASURED, msgs, gso)};

  int *active = malloc(sizeof(int) * (size_t)count), n_active = 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < count; i++) {
    int paired = cfg->direct || (peers[i].state == 2 && peers[i ^ 1].state == 2);
    if (gso) {
      int one = 1, seg = cfg->size;
      if (i % 2 == 0) setsockopt(peers[i].fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg);
      else setsockopt(peers[i].fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    }
    if (paired && (!gso || i % 2 == 0)) active[n_active++] = i;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, peers[i].fd, &ev);
  }

  rx_ring_t *ring = calloc(1, sizeof *ring);
  struct epoll_event evs[512];
  uint64_t paced = 0, max_credit = (uint64_t)(rate * 0.002);
  if (max_credit < (uint64_t)(msgs * unit)) max_credit = (uint64_t)(msgs * unit);
  int cursor = 0;
  while (now_ns() < t0) {} /* all workers start together; pacing counts from t0 */
  for (;;) {
    uint64_t now = now_ns();
    if (now >= t_end) break;
    if (now < t_stop && n_active > 0) {
      uint64_t allowed = (uint64_t)(msgs * unit);
      if (rate > 0) {
        uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9);
        if (due > paced + max_credit) paced = due - max_credit;
        allowed = due > paced ? due - paced : 0;
      }
      int n = (int)(allowed / (uint64_t)unit);
      if (n > msgs) n = msgs;
      if (n > 0) {
        int tag = now >= t_measure;
        int r = sendmmsg(peers[active[cursor]].fd, tx[tag], (unsigned)n, 0);
        int ok = r > 0 ? r : 0;
        paced += (uint64_t)n * (uint64_t)unit;
        if (tag) {
          t->sent += (uint64_t)ok * (uint64_t)unit;
          t->send_errors += (uint64_t)(n - ok) * (uint64_t)unit;
        }
        if (++cursor == n_active) cursor = 0;
      }
    }
    int nev = epoll_wait(ep, evs, 512, now >= t_stop ? 1 : 0);
    for (int e = 0; e < nev; e++) drain_socket(peers[evs[e].data.u32].fd, ring, cfg, t);
  }
  for (int i = 0; i < count; i++) t->gen_rx_drops += peer_rx_drops(peers[i].fd);
  close(ep);
  free(ring);
  free(active);
}
