#include "net_addr.h"

#include <arpa/inet.h>

namespace qr {

namespace {

const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool isMapped(const uint8_t* addr) { return std::memcmp(addr, kMappedPrefix, 12) == 0; }

}  // namespace

bool keyFromSockaddr(const sockaddr* sa, PeerKey* out) {
  if (sa->sa_family == AF_INET6) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(out->addr, &s6->sin6_addr, 16);
    out->port = ntohs(s6->sin6_port);
    return true;
  }
  if (sa->sa_family == AF_INET) {
    auto* s4 = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(out->addr, kMappedPrefix, 12);
    std::memcpy(out->addr + 12, &s4->sin_addr, 4);
    out->port = ntohs(s4->sin_port);
    return true;
  }
  return false;
}

bool parseEndpoint(const char* address, uint16_t port, int family, SockAddr* out, PeerKey* key) {
  uint8_t addr[16];
  in_addr v4;
  if (inet_pton(AF_INET, address, &v4) == 1) {
    std::memcpy(addr, kMappedPrefix, 12);
    std::memcpy(addr + 12, &v4, 4);
  } else if (inet_pton(AF_INET6, address, addr) != 1) {
    return false;
  }
  std::memset(&out->ss, 0, sizeof out->ss);
  if (family == AF_INET6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    std::memcpy(&s6->sin6_addr, addr, 16);
    out->len = sizeof(sockaddr_in6);
  } else {
    if (!isMapped(addr)) return false;
    auto* s4 = reinterpret_cast<sockaddr_in*>(&out->ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    std::memcpy(&s4->sin_addr, addr + 12, 4);
    out->len = sizeof(sockaddr_in);
  }
  if (key != nullptr) {
    std::memcpy(key->addr, addr, 16);
    key->port = port;
  }
  return true;
}

std::string formatAddress(const PeerKey& key, int family) {
  char text[INET6_ADDRSTRLEN];
  if (family == AF_INET && isMapped(key.addr)) {
    inet_ntop(AF_INET, key.addr + 12, text, sizeof text);
  } else {
    inet_ntop(AF_INET6, key.addr, text, sizeof text);
  }
  return text;
}

}  // namespace qr
