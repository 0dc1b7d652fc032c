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
  // SO_RCVBUF / SO_SNDBUF as getsockopt reported them right after the request (Linux reports
  // double what was granted for use); 0 when they could not be read.
  int receiveBuffer = 0;
  int sendBuffer = 0;
};

// Resolves the host to a bind address; IPv4 literal -> AF_INET, anything IPv6 -> AF_INET6.
bool resolveBindAddress(const std::string& host, uint16_t port, SockAddr* out, SysError* err);
bool openUdpSocket(const UdpSocketOptions& opts, UdpSocket* out, SysError* err);
// Sets SO_RCVBUF/SO_SNDBUF, trying the *FORCE variants first (root may exceed rmem_max).
void setSocketBuffers(int fd, int bytes);
// Reads SO_RCVBUF and SO_SNDBUF back (what the kernel granted, as getsockopt reports it); 0 on failure.
void readSocketBuffers(int fd, int* receive, int* send);
std::string formatBoundAddress(const SockAddr& addr);

}  // namespace qr
