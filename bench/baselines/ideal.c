/* Ideal baseline: recvmmsg a batch, answer or forward every datagram of it with one
 * sendmmsg, buffers reused in place (no copies). The practical limit of one core here. */

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pairing.h"

#define BATCH 64
#define BUF 2048

int main(int argc, char **argv) {
  int fd = baseline_socket(argc, argv, "baseline-ideal");
  pairing_t *p = pairing_create(250000);
  static uint8_t bufs[BATCH][BUF];
  static struct sockaddr_in srcs[BATCH];
  static struct iovec riov[BATCH], tiov[BATCH];
  static struct mmsghdr rx[BATCH], tx[BATCH];
  static const char ack[] = "ACK\n", err[] = "ERR\n";
  for (int i = 0; i < BATCH; i++) {
    riov[i] = (struct iovec){bufs[i], BUF};
    rx[i].msg_hdr = (struct msghdr){.msg_name = &srcs[i], .msg_iov = &riov[i], .msg_iovlen = 1};
  }
  for (;;) {
    for (int i = 0; i < BATCH; i++) rx[i].msg_hdr.msg_namelen = sizeof srcs[i];
    int got = recvmmsg(fd, rx, BATCH, MSG_WAITFORONE, NULL);
    if (got <= 0) continue;
    int out = 0;
    for (int i = 0; i < got; i++) {
      size_t n = rx[i].msg_len;
      if (rx[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
      const struct sockaddr_in *dst = NULL;
      if (pairing_is_reg(bufs[i], n)) {
        enum reply_kind r = pairing_register(p, bufs[i], n, &srcs[i]);
        tiov[out] = (struct iovec){(void *)(r == REPLY_ACK ? ack : err), 4};
        dst = &srcs[i];
      } else {
        dst = pairing_partner(p, &srcs[i]);
        if (!dst) continue;
        tiov[out] = (struct iovec){bufs[i], n};
      }
      tx[out].msg_hdr = (struct msghdr){
          .msg_name = (void *)dst, .msg_namelen = sizeof *dst, .msg_iov = &tiov[out], .msg_iovlen = 1};
      out++;
    }
    for (int done = 0; done < out;) {
      int s = sendmmsg(fd, tx + done, (unsigned)(out - done), 0);
      if (s <= 0) { done++; continue; } /* skip a datagram the kernel refuses */
      done += s;
    }
  }
}
