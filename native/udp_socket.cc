#include "udp_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <cstring>

#include "udp_offload.h"

namespace qr {

SysError SysError::fromErrno(int code, const char* syscall) {
  SysError e;
  e.code = code;
  e.syscall = syscall;
  e.message = std::string(syscall) + ": " + std::strerror(code);
  return e;
}

SysError SysError::invalid(const std::string& message) {
  SysError e;
  e.message = message;
  return e;
}

bool resolveBindAddress(const std::string& host, uint16_t port, SockAddr* out, SysError* err) {
  if (parseEndpoint(host.c_str(), port, AF_INET, out, nullptr) && host.find(':') == std::string::npos) return true;
  if (parseEndpoint(host.c_str(), port, AF_INET6, out, nullptr)) return true;
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    *err = SysError::invalid("cannot resolve host '" + host + "': " + gai_strerror(rc));
    return false;
  }
  if (res->ai_addrlen > sizeof out->ss) {
    freeaddrinfo(res);
    *err = SysError::invalid("unsupported address family for host '" + host + "'");
    return false;
  }
  std::memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
  out->len = res->ai_addrlen;
  if (res->ai_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&out->ss)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&out->ss)->sin6_port = htons(port);
  }
  freeaddrinfo(res);
  return true;
}

void setSocketBuffers(int fd, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
}

void readSocketBuffers(int fd, int* receive, int* send) {
  int value = 0;
  socklen_t length = sizeof value;
  *receive = getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, &length) == 0 ? value : 0;
  value = 0;
  length = sizeof value;
  *send = getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &length) == 0 ? value : 0;
}

// Everything the relay sends leaves with the Don't Fragment bit, whatever its size, and is never
// fragmented here (PMTUDISC_PROBE; the TS plane does the same, socket-buffers.ts): QUIC datagrams
// must not be fragmented (RFC 9000, section 14), and the peers find their path MTU through the
// relay themselves, which a relay that fragmented their probes would mislead. The kernel's own
// path MTU guess (from ICMP, which anyone can forge) is not used either. It also spares every
// send the kernel's shared IP ID generator. Best effort: a kernel that refuses keeps its default.
static void setDontFragment(int fd, int family) {
  int probe = IP_PMTUDISC_PROBE;
  setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
  if (family == AF_INET6) {
    int probe6 = IPV6_PMTUDISC_PROBE;
    setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe6, sizeof probe6);
  }
}

bool openUdpSocket(const UdpSocketOptions& opts, UdpSocket* out, SysError* err) {
  SockAddr bindAddr;
  if (!resolveBindAddress(opts.host, opts.port, &bindAddr, err)) return false;
  int family = bindAddr.ss.sin6_family;
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = SysError::fromErrno(errno, "socket");
    return false;
  }
  int one = 1;
  int zero = 0;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
    *err = SysError::fromErrno(errno, "setsockopt");
    close(fd);
    return false;
  }
  if (opts.reusePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    *err = SysError::fromErrno(errno, "setsockopt");
    close(fd);
    return false;
  }
  setSocketBuffers(fd, opts.bufferBytes);
  // The kernel may grant less than asked (net.core.rmem_max without CAP_NET_ADMIN), silently.
  readSocketBuffers(fd, &out->receiveBuffer, &out->sendBuffer);
  if (bind(fd, reinterpret_cast<sockaddr*>(&bindAddr.ss), bindAddr.len) != 0) {
    *err = SysError::fromErrno(errno, "bind");
    close(fd);
    return false;
  }
  SockAddr bound;
  bound.len = sizeof bound.ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound.ss), &bound.len) != 0) {
    *err = SysError::fromErrno(errno, "getsockname");
    close(fd);
    return false;
  }
  PeerKey key;
  keyFromSockaddr(reinterpret_cast<sockaddr*>(&bound.ss), &key);
  out->fd = fd;
  out->family = family;
  out->port = key.port;
  out->bound = bound;
  // Older kernels refuse UDP_GRO: then every datagram simply arrives on its own.
  out->groEnabled = opts.gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0;
  setDontFragment(fd, family);
  return true;
}

std::string formatBoundAddress(const SockAddr& addr) {
  PeerKey key;
  keyFromSockaddr(reinterpret_cast<const sockaddr*>(&addr.ss), &key);
  return formatAddress(key, addr.ss.sin6_family);
}

}  // namespace qr
