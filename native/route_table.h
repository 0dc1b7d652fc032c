// Routes installed by the control plane: source address -> destination, shared by all
// forwarding threads. Readers take the lock once per receive batch, never per packet;
// per-route counters are relaxed atomics so readers never write shared structure.
// Two routes that point at each other (A: X -> S, B: S -> X) are linked as each other's
// reverse, so that a datagram from S (looked up as B) answers A's unanswered-bytes limit.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "net_addr.h"
#include "slot_index.h"

namespace qr {

struct Route {
  int64_t id = -1;
  PeerKey from{};
  SockAddr to{};
  bool live = false;
  std::atomic<bool> active{false};
  // Set under the write lock: `reverse` is the route from `to` back to `from` (or null), and
  // `reverseLimited` says it has an unanswered limit, so that the per-packet test without
  // limits reads only this route's own cache line.
  bool reverseLimited = false;
  std::atomic<int64_t> observeBudget{0};
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> unanswered{0};  // bytes forwarded since `to` last sent (only with a limit)
  uint64_t unansweredLimit = 0;         // 0: no limit
  Route* reverse = nullptr;             // chunks never move: valid while both routes are live

  // Claims one observation from the budget; exact even with several threads.
  bool takeObservation() {
    int64_t left = observeBudget.load(std::memory_order_relaxed);
    while (left > 0) {
      if (observeBudget.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  // A datagram from this route's source answers the reverse route: its count starts again.
  // Per packet, so a plain load first; only a non-zero count is written.
  void answerReverse() {
    if (!reverseLimited) return;
    std::atomic<uint64_t>& count = reverse->unanswered;
    if (count.load(std::memory_order_relaxed) != 0) count.store(0, std::memory_order_relaxed);
  }

  // Charges `length` bytes against the unanswered limit; false (nothing charged) if they do not
  // fit. A compare-exchange rather than add-then-undo: a concurrent reset is never undone below 0.
  bool chargeUnanswered(uint64_t length) {
    uint64_t used = unanswered.load(std::memory_order_relaxed);
    do {
      if (length > unansweredLimit - used) return false;
    } while (!unanswered.compare_exchange_weak(used, used + length, std::memory_order_relaxed));
    return true;
  }

  void count(uint64_t datagrams, uint64_t length) {
    packets.fetch_add(datagrams, std::memory_order_relaxed);
    bytes.fetch_add(length, std::memory_order_relaxed);
    if (!active.load(std::memory_order_relaxed)) active.store(true, std::memory_order_relaxed);
  }
};

class RouteTable {
 public:
  RouteTable();
  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Replaces any route with the same id or the same source; a replacement starts with fresh counters
  // (and an unanswered count of 0). `unansweredLimit` 0 means no limit.
  void set(int64_t id, const PeerKey& from, const SockAddr& to, int64_t observeBudget, uint64_t unansweredLimit);
  bool remove(int64_t id);

  // Forwarding threads: hold the read lock around a batch of findLocked() calls.
  void readLock() { pthread_rwlock_rdlock(&lock_); }
  void readUnlock() { pthread_rwlock_unlock(&lock_); }
  Route* findLocked(const PeerKey& from) const {
    uint32_t slot = bySource_.find(from);
    return slot == BySource::kNone ? nullptr : &at(slot);
  }

  std::vector<int64_t> drainActivity();
  bool counters(int64_t id, uint64_t* packets, uint64_t* bytes);

 private:
  // Routes live in fixed chunks that never move, so a Route* stays valid under the read lock.
  static constexpr uint32_t kChunkBits = 10;

  struct SourceOf {
    const RouteTable* table;
    const PeerKey& operator()(uint32_t slot) const { return table->at(slot).from; }
  };
  struct IdOf {
    const RouteTable* table;
    const int64_t& operator()(uint32_t slot) const { return table->at(slot).id; }
  };
  struct IdHash {
    uint64_t operator()(int64_t id) const {
      uint64_t z = static_cast<uint64_t>(id) + 0x9E3779B97F4A7C15ull;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      return z ^ (z >> 31);
    }
  };
  using BySource = SlotIndex<PeerKey, PeerKeyHash, SourceOf>;
  using ById = SlotIndex<int64_t, IdHash, IdOf>;

  Route& at(uint32_t slot) const { return chunks_[slot >> kChunkBits][slot & ((1u << kChunkBits) - 1)]; }
  uint32_t allocate();
  void eraseLocked(uint32_t slot);

  pthread_rwlock_t lock_;
  std::vector<std::unique_ptr<Route[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t highWater_ = 0;
  BySource bySource_;
  ById byId_;
};

}  // namespace qr
