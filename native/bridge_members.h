// The other relays of a fleet as the native plane knows them: where each one sends from, the keys
// of both directions, the nonce sequence towards it and the window of nonces seen from it. The JS
// bridge codec draws nonces and records accepted ones here too (bridgeNonce / bridgeAdmit), so both
// planes of one relay share one sequence and one window per relay: no nonce is used twice under a
// key, and a frame accepted by either side is refused by both ever after.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "bridge_seal.h"
#include "net_addr.h"
#include "replay_window.h"

namespace qr {

// Milliseconds since the Unix epoch (sent-at and epochs are wall-clock, as in the JS codec).
uint64_t wallClockMs();

class BridgeMember {
 public:
  explicit BridgeMember(const PeerKey& address) : address_(address) {}

  const PeerKey& address() const { return address_; }

  // JS thread: the keys (tx signs frames to this relay, rx verifies frames from it, by key id) and
  // how far a frame's sent-at may be from this relay's clock.
  void setKeys(const BridgeKey& tx, const std::vector<BridgeKey>& rx, uint64_t windowMs);
  bool hasKeys() {
    std::lock_guard<std::mutex> guard(mu_);
    return keyed_;
  }
  // Copies the signing key and takes the next nonce; false while no keys were set.
  bool nextTx(uint64_t now, BridgeKey* key, uint64_t* epoch, uint32_t* counter);
  // The next nonce (JS frames: ping, pong, data sent before a route).
  void next(uint64_t now, uint64_t* epoch, uint32_t* counter);
  // Copies the key with id `keyId`; false when none has it (or no keys were set).
  bool rxKey(uint8_t keyId, BridgeKey* key, uint64_t* windowMs);
  // Records an authentic frame's nonce: false when it was used before or is too far behind.
  bool admit(uint64_t epoch, uint32_t counter);
  // The relay left: keys, window and sequence go; the next sequence starts at a later epoch.
  void forget();

 private:
  void nextLocked(uint64_t now, uint64_t* epoch, uint32_t* counter);

  const PeerKey address_;
  std::mutex mu_;
  bool keyed_ = false;
  BridgeKey tx_;
  std::vector<BridgeKey> rx_;
  uint64_t windowMs_ = 30000;
  bool sequenceStarted_ = false;
  uint64_t epoch_ = 0;
  uint64_t counter_ = 0;  // next counter; 2^32 means the epoch is used up
  uint64_t epochFloor_ = 0;
  ReplayWindow window_;
};

// Members by address. Entries are never freed while the plane lives (routes point at them); a
// relay that leaves is forgotten (BridgeMember::forget), and comes back in the same entry.
class BridgeMembers {
 public:
  static constexpr size_t kMaxMembers = 4096;
  // JS thread: the member at `address`, created if new; null past kMaxMembers.
  BridgeMember* get(const PeerKey& address);
  BridgeMember* find(const PeerKey& address);

 private:
  std::mutex mu_;
  std::unordered_map<PeerKey, std::unique_ptr<BridgeMember>, PeerKeyHash> members_;
};

}  // namespace qr
