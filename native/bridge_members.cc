#include "bridge_members.h"

#include <time.h>

namespace qr {

namespace {
constexpr uint64_t kCounterLimit = uint64_t{1} << 32;
}

uint64_t wallClockMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void BridgeMember::setKeys(const BridgeKey& tx, const std::vector<BridgeKey>& rx, uint64_t windowMs) {
  std::lock_guard<std::mutex> guard(mu_);
  tx_ = tx;
  rx_ = rx;
  windowMs_ = windowMs;
  keyed_ = true;
}

void BridgeMember::nextLocked(uint64_t now, uint64_t* epoch, uint32_t* counter) {
  if (!sequenceStarted_) {
    sequenceStarted_ = true;
    epoch_ = now > epochFloor_ ? now : epochFloor_;
    counter_ = 0;
  } else if (counter_ >= kCounterLimit) {
    epoch_ = now > epoch_ + 1 ? now : epoch_ + 1;
    counter_ = 0;
  }
  *epoch = epoch_;
  *counter = static_cast<uint32_t>(counter_++);
}

void BridgeMember::next(uint64_t now, uint64_t* epoch, uint32_t* counter) {
  std::lock_guard<std::mutex> guard(mu_);
  nextLocked(now, epoch, counter);
}

bool BridgeMember::nextTx(uint64_t now, BridgeKey* key, uint64_t* epoch, uint32_t* counter) {
  std::lock_guard<std::mutex> guard(mu_);
  if (!keyed_) return false;
  *key = tx_;
  nextLocked(now, epoch, counter);
  return true;
}

bool BridgeMember::rxKey(uint8_t keyId, BridgeKey* key, uint64_t* windowMs) {
  std::lock_guard<std::mutex> guard(mu_);
  if (!keyed_) return false;
  *windowMs = windowMs_;
  for (const BridgeKey& k : rx_) {
    if (k.id == keyId) {
      *key = k;
      return true;
    }
  }
  return false;
}

bool BridgeMember::admit(uint64_t epoch, uint32_t counter) {
  std::lock_guard<std::mutex> guard(mu_);
  return window_.admit(epoch, counter);
}

void BridgeMember::forget() {
  std::lock_guard<std::mutex> guard(mu_);
  keyed_ = false;
  rx_.clear();
  window_.reset();
  if (sequenceStarted_ && epoch_ + 1 > epochFloor_) epochFloor_ = epoch_ + 1;
  sequenceStarted_ = false;
}

BridgeMember* BridgeMembers::get(const PeerKey& address) {
  std::lock_guard<std::mutex> guard(mu_);
  auto it = members_.find(address);
  if (it != members_.end()) return it->second.get();
  if (members_.size() >= kMaxMembers) return nullptr;
  auto member = std::make_unique<BridgeMember>(address);
  BridgeMember* raw = member.get();
  members_.emplace(address, std::move(member));
  return raw;
}

BridgeMember* BridgeMembers::find(const PeerKey& address) {
  std::lock_guard<std::mutex> guard(mu_);
  auto it = members_.find(address);
  return it == members_.end() ? nullptr : it->second.get();
}

}  // namespace qr
