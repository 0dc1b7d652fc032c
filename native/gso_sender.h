// A plain UDP socket that sends one buffer as several datagrams with UDP_SEGMENT: what a
// QUIC stack with GSO does. Used by tests and benchmarks to drive the relay's GRO/GSO path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "sys_error.h"
#include "udp_socket.h"

namespace qr {

class GsoSender {
 public:
  ~GsoSender() { close(); }
  bool open(const std::string& host, SysError* err);
  // segment == 0 sends one plain datagram.
  bool send(const uint8_t* data, size_t length, uint16_t segment, const char* address, uint16_t port, SysError* err);
  void close();
  const UdpSocket& socket() const { return socket_; }

 private:
  UdpSocket socket_;
};

}  // namespace qr
