// Opening the relay's UDP sockets: family from the host, dual stack for "::", optional
// SO_REUSEPORT for several forwarding threads, large buffers, UDP_GRO when the kernel has it.
#pragma once

#include <cstdint>
#include <string>

#include "net_addr.h"
#include "sys_error.h"

namespace qr {

struct UdpSocketOptions {
  std::string host;
  uint16_t port = 0;
  int bufferBytes = 0;
  bool reusePort = false;
  bool gro = false;
};

struct UdpSocket {
  int fd = -1;
  int family = 0;
  uint16_t port = 0;      // bound port (useful after binding port 0)
  SockAddr bound{};
  bool groEnabled = false;
};

// Resolves the host to a bind address; IPv4 literal -> AF_INET, anything IPv6 -> AF_INET6.
bool resolveBindAddress(const std::string& host, uint16_t port, SockAddr* out, SysError* err);
bool openUdpSocket(const UdpSocketOptions& opts, UdpSocket* out, SysError* err);
// Sets SO_RCVBUF/SO_SNDBUF, trying the *FORCE variants first (root may exceed rmem_max).
void setSocketBuffers(int fd, int bytes);
std::string formatBoundAddress(const SockAddr& addr);

}  // namespace qr
