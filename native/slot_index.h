// A compact hash index from a key to a slot number (open addressing, linear probing, 8 bytes
// per bucket, at most half full). Keys live in the caller's storage; `keyOf(slot)` reads them,
// and a 32-bit hash tag per bucket avoids touching that storage on most mismatches.
#pragma once

#include <cstdint>
#include <vector>

namespace qr {

template <typename Key, typename Hash, typename KeyOf>
class SlotIndex {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  explicit SlotIndex(KeyOf keyOf) : keyOf_(keyOf) { buckets_.assign(kInitial, Bucket{kEmpty, 0}); }

  uint32_t find(const Key& key) const {
    uint64_t h = Hash{}(key);
    uint32_t tag = static_cast<uint32_t>(h >> 32);
    size_t mask = buckets_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Bucket& b = buckets_[i];
      if (b.slot == kEmpty) return kNone;
      if (b.slot != kTomb && b.tag == tag && keyOf_(b.slot) == key) return b.slot;
    }
  }

  // The key must not be present.
  void insert(const Key& key, uint32_t slot) {
    if ((live_ + tombs_ + 1) * 2 > buckets_.size()) rehash(live_ * 4 >= buckets_.size() ? buckets_.size() * 2 : buckets_.size());
    place(Hash{}(key), slot);
    live_++;
  }

  // Removes the bucket of `key` if it points at `slot`.
  bool erase(const Key& key, uint32_t slot) {
    uint64_t h = Hash{}(key);
    size_t mask = buckets_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Bucket& b = buckets_[i];
      if (b.slot == kEmpty) return false;
      if (b.slot == slot) {
        b.slot = kTomb;
        live_--;
        tombs_++;
        return true;
      }
    }
  }

 private:
  struct Bucket {
    uint32_t slot;
    uint32_t tag;
  };
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  static constexpr uint32_t kTomb = 0xFFFFFFFEu;
  static constexpr size_t kInitial = 16;

  void place(uint64_t h, uint32_t slot) {
    size_t mask = buckets_.size() - 1;
    size_t i = h & mask;
    while (buckets_[i].slot != kEmpty && buckets_[i].slot != kTomb) i = (i + 1) & mask;
    if (buckets_[i].slot == kTomb) tombs_--;
    buckets_[i] = Bucket{slot, static_cast<uint32_t>(h >> 32)};
  }

  void rehash(size_t size) {
    std::vector<Bucket> old;
    old.swap(buckets_);
    buckets_.assign(size, Bucket{kEmpty, 0});
    tombs_ = 0;
    for (const Bucket& b : old) {
      if (b.slot != kEmpty && b.slot != kTomb) place(Hash{}(keyOf_(b.slot)), b.slot);
    }
  }

  KeyOf keyOf_;
  std::vector<Bucket> buckets_;
  size_t live_ = 0;
  size_t tombs_ = 0;
};

}  // namespace qr
