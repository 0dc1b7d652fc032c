/* Naive baseline: one recvfrom and one sendto per datagram, the per-packet design of the
 * original relay without its task hand-offs. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pairing.h"

int main(int argc, char **argv) {
  int fd = baseline_socket(argc, argv, "baseline-naive");
  pairing_t *p = pairing_create(250000);
  static uint8_t buf[65536];
  for (;;) {
    struct sockaddr_in src;
    socklen_t sl = sizeof src;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&src, &sl);
    if (n < 0 || src.sin_family != AF_INET) continue;
    if (pairing_is_reg(buf, (size_t)n)) {
      enum reply_kind r = pairing_register(p, buf, (size_t)n, &src);
      const char *reply = r == REPLY_ACK ? "ACK\n" : "ERR\n";
      sendto(fd, reply, 4, 0, (struct sockaddr *)&src, sl);
      continue;
    }
    const struct sockaddr_in *dst = pairing_partner(p, &src);
    if (dst) sendto(fd, buf, (size_t)n, 0, (const struct sockaddr *)dst, sizeof *dst);
  }
}
