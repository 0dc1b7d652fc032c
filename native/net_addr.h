// Peer addresses as the relay sees them: a family-independent key for lookups and a
// ready-to-use sockaddr for sends, plus the textual form Bun.udpSocket reports.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace qr {

// IPv6 address (IPv4 stored v4-mapped) and port in host order; identical for both socket families.
struct PeerKey {
  uint8_t addr[16];
  uint16_t port;

  bool operator==(const PeerKey& o) const {
    return port == o.port && std::memcmp(addr, o.addr, sizeof addr) == 0;
  }
};

struct PeerKeyHash {
  size_t operator()(const PeerKey& k) const noexcept {
    uint64_t a;
    uint64_t b;
    std::memcpy(&a, k.addr, 8);
    std::memcpy(&b, k.addr + 8, 8);
    uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^ ((b + k.port) * 0xC2B2AE3D27D4EB4Full);
    return static_cast<size_t>(h ^ (h >> 31));
  }
};

// Big enough for AF_INET and AF_INET6 (a sockaddr_in fits in a sockaddr_in6); kept small
// because every route stores one.
struct SockAddr {
  sockaddr_in6 ss;
  socklen_t len;
};

// Key of a source address returned by recvmmsg (AF_INET or AF_INET6).
bool keyFromSockaddr(const sockaddr* sa, PeerKey* out);

// Parses "1.2.3.4", "::ffff:1.2.3.4" or an IPv6 literal into a sockaddr of the socket's family.
// Fails for an IPv6 (non-mapped) address on an AF_INET socket.
bool parseEndpoint(const char* address, uint16_t port, int family, SockAddr* out, PeerKey* key);

// "::ffff:1.2.3.4" / "::1" on AF_INET6 sockets, "1.2.3.4" on AF_INET sockets.
std::string formatAddress(const PeerKey& key, int family);

}  // namespace qr
