// Which nonces (epoch, counter) one sender has used: ReplayWindow in src/fleet/replay-window.ts,
// the same rules, so a frame accepted by either plane is accepted once. Not thread-safe: its owner
// (BridgeMember) locks around it.
#pragma once

#include <cstdint>
#include <cstring>

namespace qr {

class ReplayWindow {
 public:
  static constexpr uint32_t kSize = 1024;  // REPLAY_WINDOW_SIZE

  // True (and recorded) when the nonce was not used before; false records nothing.
  bool admit(uint64_t epoch, uint32_t counter) {
    if (!started_ || epoch > epoch_) {
      started_ = true;
      epoch_ = epoch;
      top_ = counter;
      std::memset(seen_, 0, sizeof seen_);
      mark(counter);
      return true;
    }
    if (epoch < epoch_) return false;
    if (counter > top_) {
      slideTo(counter);
      mark(counter);
      return true;
    }
    if (top_ - counter >= kSize || marked(counter)) return false;
    mark(counter);
    return true;
  }

  void reset() {
    started_ = false;
    epoch_ = 0;
    top_ = 0;
    std::memset(seen_, 0, sizeof seen_);
  }

 private:
  void slideTo(uint32_t counter) {
    if (counter - top_ >= kSize) {
      std::memset(seen_, 0, sizeof seen_);
    } else {
      for (uint32_t c = top_ + 1; c <= counter && c != 0; c++) clear(c);
    }
    top_ = counter;
  }
  void mark(uint32_t c) { seen_[(c & (kSize - 1)) >> 6] |= uint64_t{1} << (c & 63); }
  void clear(uint32_t c) { seen_[(c & (kSize - 1)) >> 6] &= ~(uint64_t{1} << (c & 63)); }
  bool marked(uint32_t c) const { return (seen_[(c & (kSize - 1)) >> 6] & (uint64_t{1} << (c & 63))) != 0; }

  bool started_ = false;
  uint64_t epoch_ = 0;
  uint32_t top_ = 0;
  uint64_t seen_[kSize / 64] = {};
};

}  // namespace qr
