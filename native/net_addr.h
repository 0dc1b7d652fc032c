// Peer addresses as the relay sees them: a family-independent key for lookups and a
// ready-to-use sockaddr for sends, plus the textual form Bun.udpSocket reports.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <random>
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

// A 64-bit finalizer: every input bit reaches every output bit (the route index takes its
// bucket from the low bits and a tag from the high ones).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Chosen once per process, so that which addresses collide cannot be worked out from outside:
// sources are the attacker's to choose (and to forge), and colliding keys would make every
// lookup of the route table a long probe.
inline const uint64_t kPeerKeySeed = [] {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}();

// Every byte of the address and the port counts: an IPv4 address (v4-mapped) lives in the last
// four bytes, and peers behind one NAT differ in few of them.
struct PeerKeyHash {
  size_t operator()(const PeerKey& k) const noexcept {
    uint64_t a;
    uint64_t b;
    std::memcpy(&a, k.addr, 8);
    std::memcpy(&b, k.addr + 8, 8);
    return static_cast<size_t>(mix64(mix64(a ^ kPeerKeySeed) ^ b ^ (static_cast<uint64_t>(k.port) << 1)));
  }
};

// Big enough for AF_INET and AF_INET6 (a sockaddr_in fits in a sockaddr_in6); routes keep the
// smaller CompactAddr below.
struct SockAddr {
  sockaddr_in6 ss;
  socklen_t len;
};

// Key of a source address returned by recvmmsg (AF_INET or AF_INET6).
bool keyFromSockaddr(const sockaddr* sa, PeerKey* out);

// A SockAddr that parseEndpoint made, in 20 bytes instead of 32 (every route stores one): it leaves
// flowinfo, scope id and padding zero, and the length follows from the family, so the key and the
// family give back the same bytes.
struct CompactAddr {
  PeerKey key{};  // as keyFromSockaddr gives it: IPv4 v4-mapped, port in host order
  bool v6 = false;

  static CompactAddr from(const SockAddr& a) {
    CompactAddr c;
    c.v6 = a.ss.sin6_family == AF_INET6;
    keyFromSockaddr(reinterpret_cast<const sockaddr*>(&a.ss), &c.key);
    return c;
  }
  void expand(SockAddr* out) const {
    std::memset(&out->ss, 0, sizeof out->ss);
    if (v6) {
      out->ss.sin6_family = AF_INET6;
      out->ss.sin6_port = htons(key.port);
      std::memcpy(&out->ss.sin6_addr, key.addr, 16);
      out->len = sizeof(sockaddr_in6);
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&out->ss);
      s4->sin_family = AF_INET;
      s4->sin_port = htons(key.port);
      std::memcpy(&s4->sin_addr, key.addr + 12, 4);
      out->len = sizeof(sockaddr_in);
    }
  }
  operator SockAddr() const {
    SockAddr out;
    expand(&out);
    return out;
  }
};

// Parses "1.2.3.4", "::ffff:1.2.3.4" or an IPv6 literal into a sockaddr of the socket's family.
// Fails for an IPv6 (non-mapped) address on an AF_INET socket.
bool parseEndpoint(const char* address, uint16_t port, int family, SockAddr* out, PeerKey* key);

// "::ffff:1.2.3.4" / "::1" on AF_INET6 sockets, "1.2.3.4" on AF_INET sockets.
std::string formatAddress(const PeerKey& key, int family);

}  // namespace qr
