// Routes installed by the control plane: source address -> destination, shared by all
// forwarding threads. Readers take the lock once per receive batch, never per packet;
// per-route counters are relaxed atomics so readers never write shared structure.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "net_addr.h"

namespace qr {

struct Route {
  int64_t id;
  PeerKey from;
  SockAddr to;
  std::atomic<int64_t> observeBudget{0};
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> active{false};

  // Claims one observation from the budget; exact even with several threads.
  bool takeObservation() {
    int64_t left = observeBudget.load(std::memory_order_relaxed);
    while (left > 0) {
      if (observeBudget.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return true;
    }
    return false;
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

  // Replaces any route with the same id or the same source; a replacement starts with fresh counters.
  void set(int64_t id, const PeerKey& from, const SockAddr& to, int64_t observeBudget);
  bool remove(int64_t id);
  void clear();

  // Forwarding threads: hold the read lock around a batch of findLocked() calls.
  void readLock() { pthread_rwlock_rdlock(&lock_); }
  void readUnlock() { pthread_rwlock_unlock(&lock_); }
  Route* findLocked(const PeerKey& from) const {
    auto it = bySource_.find(from);
    return it == bySource_.end() ? nullptr : it->second;
  }

  std::vector<int64_t> drainActivity();
  bool counters(int64_t id, uint64_t* packets, uint64_t* bytes);
  size_t size();

 private:
  void eraseLocked(Route* route);

  pthread_rwlock_t lock_;
  std::unordered_map<PeerKey, Route*, PeerKeyHash> bySource_;
  std::unordered_map<int64_t, std::unique_ptr<Route>> byId_;
};

}  // namespace qr
