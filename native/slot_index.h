// A compact hash index from a key to a slot number (open addressing, linear probing, 6 bytes
// per bucket, at most half full). Keys live in the caller's storage; `keyOf(slot)` reads them,
// and a 16-bit hash tag per bucket avoids touching that storage on all but 1 in 65536 mismatches.
#pragma once

#include <cstdint>
#include <vector>

namespace qr {

template <typename Key, typename Hash, typename KeyOf>
class SlotIndex {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  explicit SlotIndex(KeyOf keyOf) : keyOf_(keyOf) { buckets_.assign(kInitial, Bucket(kEmpty, 0)); }

  uint32_t find(const Key& key) const {
    uint64_t h = Hash{}(key);
    uint16_t tag = tagOf(h);
    size_t mask = buckets_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Bucket& b = buckets_[i];
      uint32_t slot = b.slot();
      if (slot == kEmpty) return kNone;
      if (slot != kTomb && b.tag == tag && keyOf_(slot) == key) return slot;
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
      if (b.slot() == kEmpty) return false;
      if (b.slot() == slot) {
        b = Bucket(kTomb, 0);
        live_--;
        tombs_++;
        return true;
      }
    }
  }

 private:
  // Three halves rather than a uint32_t and a uint16_t: 6 bytes, not 8 with padding.
  struct Bucket {
    uint16_t low;
    uint16_t high;
    uint16_t tag;
    Bucket(uint32_t slot, uint16_t t) : low(static_cast<uint16_t>(slot)), high(static_cast<uint16_t>(slot >> 16)), tag(t) {}
    uint32_t slot() const { return low | static_cast<uint32_t>(high) << 16; }
  };
  static_assert(sizeof(Bucket) == 6, "a bucket per half a route");
  // The bucket comes from the low bits of the hash, the tag from the top ones.
  static uint16_t tagOf(uint64_t h) { return static_cast<uint16_t>(h >> 48); }
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  static constexpr uint32_t kTomb = 0xFFFFFFFEu;
  static constexpr size_t kInitial = 16;

  void place(uint64_t h, uint32_t slot) {
    size_t mask = buckets_.size() - 1;
    size_t i = h & mask;
    while (buckets_[i].slot() != kEmpty && buckets_[i].slot() != kTomb) i = (i + 1) & mask;
    if (buckets_[i].slot() == kTomb) tombs_--;
    buckets_[i] = Bucket(slot, tagOf(h));
  }

  void rehash(size_t size) {
    std::vector<Bucket> old;
    old.swap(buckets_);
    buckets_.assign(size, Bucket(kEmpty, 0));
    tombs_ = 0;
    for (const Bucket& b : old) {
      if (b.slot() != kEmpty && b.slot() != kTomb) place(Hash{}(keyOf_(b.slot())), b.slot());
    }
  }

  KeyOf keyOf_;
  std::vector<Bucket> buckets_;
  size_t live_ = 0;
  size_t tombs_ = 0;
};

// An index from an integer id to a slot, for ids that are mostly small and dense (the control
// plane's peer ids, see src/sessions/peer-index.ts): those are found in an array of 4 bytes per id;
// any other id (negative, or far beyond the ids present) goes to a SlotIndex, so every id works
// and a far-off one costs a bucket, not an array up to it.
template <typename Hash, typename IdOf>
class IdSlotIndex {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  explicit IdSlotIndex(IdOf idOf) : sparse_(idOf) {}

  uint32_t find(int64_t id) const {
    if (inDense(id) && dense_[id] != kNone) return dense_[id];
    return sparseCount_ == 0 ? kNone : sparse_.find(id);
  }

  // The id must not be present. The array grows to take `id` only while it stays within twice the
  // ids present (plus some slack): its size is bounded by the ids present, not by their values.
  void insert(int64_t id, uint32_t slot) {
    if (id >= 0 && !inDense(id) && static_cast<uint64_t>(id) < kSlack + 2 * static_cast<uint64_t>(count_)) {
      dense_.resize(static_cast<size_t>(id) + 1, kNone);
    }
    if (inDense(id)) {
      dense_[id] = slot;
    } else {
      sparse_.insert(id, slot);
      sparseCount_++;
    }
    count_++;
  }

  // Removes `id` if it maps to `slot` (it may be in the sparse index though the array has grown past it).
  void erase(int64_t id, uint32_t slot) {
    if (inDense(id) && dense_[id] == slot) {
      dense_[id] = kNone;
      count_--;
    } else if (sparseCount_ > 0 && sparse_.erase(id, slot)) {
      sparseCount_--;
      count_--;
    }
  }

 private:
  static constexpr uint64_t kSlack = 1u << 16;

  bool inDense(int64_t id) const { return id >= 0 && static_cast<uint64_t>(id) < dense_.size(); }

  std::vector<uint32_t> dense_;
  SlotIndex<int64_t, Hash, IdOf> sparse_;
  size_t sparseCount_ = 0;
  size_t count_ = 0;
};

}  // namespace qr
