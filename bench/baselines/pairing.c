#include "pairing.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ID 64

typedef struct {
  uint8_t used, count, id_len;
  char id[MAX_ID];
  struct sockaddr_in peer[2];
} session_t;

typedef struct {
  uint64_t key; /* 0 = empty; otherwise (ip << 16 | port) + 1 */
  uint32_t session;
  uint8_t side;
} member_t;

struct pairing {
  uint32_t session_mask, member_mask, sessions_used;
  session_t *sessions;
  member_t *members;
};

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

static uint64_t hash_id(const uint8_t *s, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
  return h;
}

static uint64_t addr_key(const struct sockaddr_in *a) {
  return (((uint64_t)a->sin_addr.s_addr << 16) | a->sin_port) + 1;
}

static uint32_t pow2_at_least(uint64_t n) {
  uint32_t c = 1024;
  while (c < n) c <<= 1;
  return c;
}

pairing_t *pairing_create(uint32_t max_sessions) {
  pairing_t *p = calloc(1, sizeof *p);
  uint32_t sc = pow2_at_least((uint64_t)max_sessions * 2), mc = pow2_at_least((uint64_t)max_sessions * 4);
  p->session_mask = sc - 1;
  p->member_mask = mc - 1;
  p->sessions = calloc(sc, sizeof(session_t));
  p->members = calloc(mc, sizeof(member_t));
  if (!p->sessions || !p->members) {
    fprintf(stderr, "pairing: out of memory\n");
    exit(1);
  }
  return p;
}

static member_t *member_slot(const pairing_t *p, uint64_t key) {
  for (uint64_t i = mix64(key);; i++) {
    member_t *m = &p->members[i & p->member_mask];
    if (m->key == key || m->key == 0) return m;
  }
}

enum reply_kind pairing_register(pairing_t *p, const uint8_t *data, size_t len, const struct sockaddr_in *src) {
  const uint8_t *id = data + 4;
  size_t n = len - 4;
  if (n > 0 && id[n - 1] == '\n') n--;
  if (n > 0 && id[n - 1] == '\r') n--;
  if (n == 0 || n > MAX_ID) return REPLY_ERR;

  uint64_t key = addr_key(src);
  member_t *m = member_slot(p, key);
  session_t *s = NULL;
  for (uint64_t i = hash_id(id, n);; i++) {
    s = &p->sessions[i & p->session_mask];
    if (!s->used || (s->id_len == n && memcmp(s->id, id, n) == 0)) break;
  }
  if (m->key) { /* already a member: idempotent for its own session only */
    return (&p->sessions[m->session] == s) ? REPLY_ACK : REPLY_ERR;
  }
  if (!s->used) {
    if (p->sessions_used * 2 > p->session_mask) return REPLY_ERR; /* keep probing short */
    s->used = 1;
    s->id_len = (uint8_t)n;
    memcpy(s->id, id, n);
    p->sessions_used++;
  }
  if (s->count == 2) return REPLY_ERR;
  s->peer[s->count] = *src;
  m->key = key;
  m->session = (uint32_t)(s - p->sessions);
  m->side = s->count++;
  return REPLY_ACK;
}

const struct sockaddr_in *pairing_partner(const pairing_t *p, const struct sockaddr_in *src) {
  const member_t *m = member_slot(p, addr_key(src));
  if (!m->key) return NULL;
  const session_t *s = &p->sessions[m->session];
  return s->count == 2 ? &s->peer[1 - m->side] : NULL;
}

static void set_buffer(int fd, int opt_force, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, opt_force, &bytes, sizeof bytes) != 0)
    setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

int baseline_socket(int argc, char **argv, const char *name) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
    else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "%s: bad host %s\n", name, host);
    exit(2);
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, 4 << 20);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, 4 << 20);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("bind");
    exit(1);
  }
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  fprintf(stderr, "%s listening on %s:%d\n", name, host, ntohs(a.sin_port));
  return fd;
}
