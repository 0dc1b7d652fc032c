#include "gso_sender.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <cstring>

#include "udp_offload.h"

namespace qr {

bool GsoSender::open(const std::string& host, SysError* err) {
  UdpSocketOptions opts;
  opts.host = host;
  opts.bufferBytes = 4 << 20;
  return openUdpSocket(opts, &socket_, err);
}

bool GsoSender::send(const uint8_t* data, size_t length, uint16_t segment, const char* address, uint16_t port,
                     SysError* err) {
  if (socket_.fd < 0) {
    *err = SysError::invalid("socket is closed");
    return false;
  }
  SockAddr to;
  if (!parseEndpoint(address, port, socket_.family, &to, nullptr)) {
    *err = SysError::invalid(std::string("bad address: ") + address);
    return false;
  }
  struct iovec iov = {const_cast<uint8_t*>(data), length};
  struct msghdr msg;
  std::memset(&msg, 0, sizeof msg);
  msg.msg_name = &to.ss;
  msg.msg_namelen = to.len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))];
  if (segment > 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
  }
  ssize_t rc;
  do {
    rc = sendmsg(socket_.fd, &msg, 0);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    *err = SysError::fromErrno(errno, "sendmsg");
    return false;
  }
  return true;
}

void GsoSender::close() {
  if (socket_.fd >= 0) ::close(socket_.fd);
  socket_.fd = -1;
}

}  // namespace qr
