#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

#define REG_WINDOW 512
#define REG_RESEND_NS 250000000ull

/* 254 hosts per /24 (skip .0 and .255), 256 /24s per second-octet value. */
void peer_address(int ip_base, uint32_t index, struct sockaddr_in *out) {
  uint32_t host = 1 + index % 254, rest = index / 254;
  uint32_t third = rest % 256, second = (uint32_t)ip_base + rest / 256;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_addr.s_addr = htonl((127u << 24) | (second << 16) | (third << 8) | host);
}

int peers_open(peer_t *peers, int count, uint32_t first_index, const config_t *cfg, int rcvbuf) {
  for (int i = 0; i < count; i++) {
    peer_t *p = &peers[i];
    memset(p, 0, sizeof *p);
    peer_address(cfg->ip_base, (first_index + (uint32_t)i) / (uint32_t)cfg->peers_per_ip, &p->addr);
    p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
      fprintf(stderr, "loadgen: socket: %s (peer %d)\n", strerror(errno), i);
      return -1;
    }
    if (rcvbuf > 0 && setsockopt(p->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
      setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    socklen_t al = sizeof p->addr;
    if (bind(p->fd, (struct sockaddr *)&p->addr, sizeof p->addr) != 0 ||
        getsockname(p->fd, (struct sockaddr *)&p->addr, &al) != 0) {
      fprintf(stderr, "loadgen: bind %s: %s\n", inet_ntoa(p->addr.sin_addr), strerror(errno));
      return -1;
    }
  }
  /* Connected sockets skip a route lookup per send and only accept the relay's datagrams. */
  for (int i = 0; i < count; i++) {
    const struct sockaddr_in *to = cfg->direct ? &peers[i ^ 1].addr : &cfg->relay;
    if (connect(peers[i].fd, (const struct sockaddr *)to, sizeof *to) != 0) {
      fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
      return -1;
    }
  }
  return 0;
}

void peers_close(peer_t *peers, int count) {
  for (int i = 0; i < count; i++) close(peers[i].fd);
}

uint64_t peer_rx_drops(int fd) {
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof mem;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 || len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
    return 0;
  return mem[SK_MEMINFO_DROPS];
}

static void send_reg(peer_t *p, uint32_t session, uint32_t nonce, uint64_t now) {
  char msg[64];
  int n = snprintf(msg, sizeof msg, "REG:%08x-0000-4000-a000-%012x\n", nonce, session);
  send(p->fd, msg, (size_t)n, 0);
  p->state = 1;
  p->sent_at = now;
}

void peers_register(peer_t *peers, int count, uint32_t first_session, const config_t *cfg, totals_t *t) {
  uint64_t start = now_ns(), deadline = start + (uint64_t)(cfg->reg_timeout * 1e9);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < count; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, peers[i].fd, &ev);
  }
  int inflight[REG_WINDOW], n_inflight = 0, next = 0, done = 0;
  struct epoll_event evs[256];
  while (done < count) {
    uint64_t now = now_ns();
    if (now > deadline) break;
    while (n_inflight < REG_WINDOW && next < count) {
      send_reg(&peers[next], first_session + (uint32_t)next / 2, cfg->nonce, now);
      inflight[n_inflight++] = next++;
    }
    int nev = epoll_wait(ep, evs, 256, 5);
    for (int e = 0; e < nev; e++) {
      peer_t *p = &peers[evs[e].data.u32];
      char buf[64];
      ssize_t n;
      while ((n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT)) >= 0) {
        if (p->state != 1 || n < 3) continue;
        if (memcmp(buf, "ACK", 3) == 0) p->state = 2;
        else if (memcmp(buf, "ERR", 3) == 0) p->state = 3;
        else continue;
        done++;
      }
    }
    now = now_ns();
    int keep = 0;
    for (int k = 0; k < n_inflight; k++) {
      peer_t *p = &peers[inflight[k]];
      if (p->state != 1) continue;
      if (now - p->sent_at > REG_RESEND_NS) send_reg(p, first_session + (uint32_t)inflight[k] / 2, cfg->nonce, now);
      inflight[keep++] = inflight[k];
    }
    n_inflight = keep;
  }
  close(ep);
  for (int i = 0; i < count; i++) {
    if (peers[i].state == 2) t->reg_acked++;
    else if (peers[i].state == 3) t->reg_refused++;
    else t->reg_timeout++;
  }
  t->reg_ns += now_ns() - start;
}
