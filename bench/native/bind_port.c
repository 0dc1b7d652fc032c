/*
 * LD_PRELOAD shim for a QUIC client that cannot choose its local UDP port (ngtcp2's gtlsclient
 * binds port 0): a bind() of an IPv4 datagram socket to port 0 gets port $QB_BIND_PORT instead, the
 * port bench/quic-bulk.ts registered with the relay from a helper socket just before. Everything
 * else passes through unchanged.
 */
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  const char *port = getenv("QB_BIND_PORT");
  int type = 0;
  socklen_t type_len = sizeof type;
  if (port != NULL && addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in) &&
      ((const struct sockaddr_in *)addr)->sin_port == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_DGRAM) {
    struct sockaddr_in pinned = *(const struct sockaddr_in *)addr;
    pinned.sin_port = htons((unsigned short)atoi(port));
    return real_bind(fd, (const struct sockaddr *)&pinned, sizeof pinned);
  }
  return real_bind(fd, addr, len);
}
