// A compact hash index from a key to a slot number (open addressing, linear probing, 6 bytes
// per bucket, at most 70 % full). Keys live in the caller's storage; `keyOf(slot)` reads them,
// and a 16-bit hash tag per bucket avoids touching that storage on all but 1 in 65536 mismatches.
// The index is split 256 ways by hash: a growth step rehashes one part, a 256th of the keys, so
// inserting never holds the caller (and its lock) for a walk of every key. Each part doubles at
// its own fill (fillLimit): parts fill evenly, and with one limit for all they would all rehash
// within a few hundred inserts (at two million routes, the JS thread and the forwarding threads
// held for tens of milliseconds); spread over 50-70 %, one part rehashes at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

namespace qr {

template <typename Key, typename Hash, typename KeyOf>
class SlotIndex {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  explicit SlotIndex(KeyOf keyOf) : keyOf_(keyOf) {
    for (Part& p : parts_) p.buckets.assign(kInitial, Bucket(kEmpty, 0));
  }

  uint32_t find(const Key& key) const {
    uint64_t h = Hash{}(key);
    const Part& p = parts_[partOf(h)];
    uint16_t tag = tagOf(h);
    size_t mask = p.buckets.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Bucket& b = p.buckets[i];
      uint32_t slot = b.slot();
      if (slot == kEmpty) return kNone;
      if (slot != kTomb && b.tag == tag && keyOf_(slot) == key) return slot;
    }
  }

  // The key must not be present.
  void insert(const Key& key, uint32_t slot) {
    uint64_t h = Hash{}(key);
    Part& p = parts_[partOf(h)];
    if ((p.live + p.tombs + 1) * kFillScale > p.buckets.size() * fillLimit(&p - parts_)) {
      rehash(p, p.live * 4 >= p.buckets.size() ? p.buckets.size() * 2 : p.buckets.size());
    }
    place(p, h, slot);
    p.live++;
  }

  // Removes the bucket of `key` if it points at `slot`.
  bool erase(const Key& key, uint32_t slot) {
    uint64_t h = Hash{}(key);
    Part& p = parts_[partOf(h)];
    size_t mask = p.buckets.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Bucket& b = p.buckets[i];
      if (b.slot() == kEmpty) return false;
      if (b.slot() == slot) {
        b = Bucket(kTomb, 0);
        p.live--;
        p.tombs++;
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
  struct Part {
    std::vector<Bucket> buckets;
    size_t live = 0;
    size_t tombs = 0;
  };
  static constexpr unsigned kPartBits = 8;
  // Part k doubles past fillLimit(k) / kFillScale of its buckets in use: from 50 % for the first
  // part to 70 % for the last.
  static constexpr size_t kFillScale = 1024;
  static constexpr size_t fillLimit(ptrdiff_t part) {
    return kFillScale / 2 + static_cast<size_t>(part) * (kFillScale / 5) / ((1u << kPartBits) - 1);
  }
  // The bucket comes from the low bits of the hash, the part from bits 40 to 47, the tag from the
  // top 16: three independent slices of a well-mixed hash.
  static size_t partOf(uint64_t h) { return static_cast<size_t>(h >> 40) & ((1u << kPartBits) - 1); }
  static uint16_t tagOf(uint64_t h) { return static_cast<uint16_t>(h >> 48); }
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  static constexpr uint32_t kTomb = 0xFFFFFFFEu;
  static constexpr size_t kInitial = 16;

  static void place(Part& p, uint64_t h, uint32_t slot) {
    size_t mask = p.buckets.size() - 1;
    size_t i = h & mask;
    while (p.buckets[i].slot() != kEmpty && p.buckets[i].slot() != kTomb) i = (i + 1) & mask;
    if (p.buckets[i].slot() == kTomb) p.tombs--;
    p.buckets[i] = Bucket(slot, tagOf(h));
  }

  void rehash(Part& p, size_t size) {
    std::vector<Bucket> old;
    old.swap(p.buckets);
    p.buckets.assign(size, Bucket(kEmpty, 0));
    p.tombs = 0;
    for (const Bucket& b : old) {
      if (b.slot() != kEmpty && b.slot() != kTomb) place(p, Hash{}(keyOf_(b.slot())), b.slot());
    }
  }

  KeyOf keyOf_;
  Part parts_[1u << kPartBits];
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
    if (inDense(id) && dense(id) != kNone) return dense(id);
    return sparseCount_ == 0 ? kNone : sparse_.find(id);
  }

  // The id must not be present. The array grows to take `id` only while it stays within twice the
  // ids present (plus some slack): its size is bounded by the ids present, not by their values.
  // It grows a page at a time and never copies what it holds.
  void insert(int64_t id, uint32_t slot) {
    if (id >= 0 && !inDense(id) && static_cast<uint64_t>(id) < kSlack + 2 * static_cast<uint64_t>(count_)) {
      while (!inDense(id)) {
        pages_.emplace_back(new uint32_t[kPage]);
        std::fill_n(pages_.back().get(), kPage, kNone);
      }
    }
    if (inDense(id)) {
      dense(id) = slot;
    } else {
      sparse_.insert(id, slot);
      sparseCount_++;
    }
    count_++;
  }

  // Removes `id` if it maps to `slot` (it may be in the sparse index though the array has grown past it).
  void erase(int64_t id, uint32_t slot) {
    if (inDense(id) && dense(id) == slot) {
      dense(id) = kNone;
      count_--;
    } else if (sparseCount_ > 0 && sparse_.erase(id, slot)) {
      sparseCount_--;
      count_--;
    }
  }

 private:
  static constexpr uint64_t kSlack = 1u << 16;
  static constexpr unsigned kPageBits = 16;
  static constexpr size_t kPage = size_t{1} << kPageBits;

  bool inDense(int64_t id) const { return id >= 0 && (static_cast<uint64_t>(id) >> kPageBits) < pages_.size(); }
  uint32_t& dense(int64_t id) const { return pages_[static_cast<uint64_t>(id) >> kPageBits][static_cast<uint64_t>(id) & (kPage - 1)]; }

  // The array of ids, in pages of kPage entries.
  std::vector<std::unique_ptr<uint32_t[]>> pages_;
  SlotIndex<int64_t, Hash, IdOf> sparse_;
  size_t sparseCount_ = 0;
  size_t count_ = 0;
};

}  // namespace qr
