// What a route needs to carry a session across the bridge to another relay. An outbound route
// (kind Out) takes a local peer's datagrams, wraps each in a frame for the session and sends it to
// the member relay; an inbound route (kind In) delivers the payload of that relay's frames for the
// session to the local peer. The remote peer has no address here: it is named by a virtual key
// made from the session id, which is the inbound route's source and the outbound route's logical
// destination, so the two link as each other's reverse like any pair of routes.
#pragma once

#include <cstdint>
#include <cstring>

#include "bridge_frame.h"
#include "bridge_members.h"
#include "net_addr.h"

namespace qr {

struct BridgeLink {
  enum class Kind : uint8_t { Out, In };
  Kind kind = Kind::Out;
  BridgeMember* member = nullptr;  // never freed while the plane lives
  PeerKey virtualKey{};
  uint8_t sidLength = 0;
  uint8_t sid[kMaxSessionId] = {};

  bool sameSession(const uint8_t* other, uint32_t length) const {
    return length == sidLength && std::memcmp(other, sid, length) == 0;
  }
};

// The virtual key of session `sid`: an address in ff00::/8 (multicast, never a datagram's source)
// and bits of a keyed hash of the id, so no real peer's key equals one and ids cannot be chosen to
// collide (an inbound route also compares the id itself).
inline PeerKey bridgeVirtualKey(const uint8_t* sid, uint32_t length) {
  uint64_t h1 = mix64(kPeerKeySeed ^ length);
  uint64_t h2 = mix64(~kPeerKeySeed + length);
  for (uint32_t i = 0; i < length; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, sid + i, length - i < 8 ? length - i : 8);
    h1 = mix64(h1 ^ word);
    h2 = mix64(h2 + word + 0x9E3779B97F4A7C15ull);
  }
  PeerKey key;
  key.addr[0] = 0xff;
  key.addr[1] = 0x00;
  std::memcpy(key.addr + 2, &h1, 8);
  std::memcpy(key.addr + 10, &h2, 6);
  key.port = static_cast<uint16_t>(h2 >> 48);
  return key;
}

}  // namespace qr
