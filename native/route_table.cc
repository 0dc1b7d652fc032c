#include "route_table.h"

namespace qr {

namespace {

class WriteGuard {
 public:
  explicit WriteGuard(pthread_rwlock_t* lock) : lock_(lock) { pthread_rwlock_wrlock(lock_); }
  ~WriteGuard() { pthread_rwlock_unlock(lock_); }

 private:
  pthread_rwlock_t* lock_;
};

class ReadGuard {
 public:
  explicit ReadGuard(pthread_rwlock_t* lock) : lock_(lock) { pthread_rwlock_rdlock(lock_); }
  ~ReadGuard() { pthread_rwlock_unlock(lock_); }

 private:
  pthread_rwlock_t* lock_;
};

}  // namespace

RouteTable::RouteTable() : bySource_(SourceOf{this}), byId_(IdOf{this}) {
  // Writers first: with several forwarding threads the read side is almost always held,
  // and route changes from the control plane must not wait behind a stream of batches.
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&lock_, &attr);
  pthread_rwlockattr_destroy(&attr);
}

RouteTable::~RouteTable() { pthread_rwlock_destroy(&lock_); }

uint32_t RouteTable::allocate() {
  if (!free_.empty()) {
    uint32_t slot = free_.back();
    free_.pop_back();
    return slot;
  }
  if ((highWater_ >> kChunkBits) == chunks_.size()) chunks_.emplace_back(new Route[1u << kChunkBits]);
  return highWater_++;
}

void RouteTable::eraseLocked(uint32_t slot) {
  Route& route = at(slot);
  bySource_.erase(route.from, slot);
  byId_.erase(route.id, slot);
  route.live = false;
  free_.push_back(slot);
  live_--;
}

void RouteTable::set(int64_t id, const PeerKey& from, const SockAddr& to, int64_t observeBudget) {
  WriteGuard guard(&lock_);
  uint32_t sameSource = bySource_.find(from);
  if (sameSource != kNoSlot && at(sameSource).id != id) eraseLocked(sameSource);
  uint32_t sameId = byId_.find(id);
  if (sameId != kNoSlot) eraseLocked(sameId);
  uint32_t slot = allocate();
  Route& route = at(slot);
  route.id = id;
  route.from = from;
  route.to = to;
  route.live = true;
  route.observeBudget.store(observeBudget, std::memory_order_relaxed);
  route.packets.store(0, std::memory_order_relaxed);
  route.bytes.store(0, std::memory_order_relaxed);
  route.active.store(false, std::memory_order_relaxed);
  bySource_.insert(from, slot);
  byId_.insert(id, slot);
  live_++;
}

bool RouteTable::remove(int64_t id) {
  WriteGuard guard(&lock_);
  uint32_t slot = byId_.find(id);
  if (slot == kNoSlot) return false;
  eraseLocked(slot);
  return true;
}

void RouteTable::clear() {
  WriteGuard guard(&lock_);
  bySource_.clear();
  byId_.clear();
  chunks_.clear();
  free_.clear();
  highWater_ = 0;
  live_ = 0;
}

std::vector<int64_t> RouteTable::drainActivity() {
  std::vector<int64_t> ids;
  ReadGuard guard(&lock_);
  for (uint32_t slot = 0; slot < highWater_; slot++) {
    Route& route = at(slot);
    if (route.live && route.active.exchange(false, std::memory_order_relaxed)) ids.push_back(route.id);
  }
  return ids;
}

bool RouteTable::counters(int64_t id, uint64_t* packets, uint64_t* bytes) {
  ReadGuard guard(&lock_);
  uint32_t slot = byId_.find(id);
  if (slot == kNoSlot) return false;
  *packets = at(slot).packets.load(std::memory_order_relaxed);
  *bytes = at(slot).bytes.load(std::memory_order_relaxed);
  return true;
}

size_t RouteTable::size() {
  ReadGuard guard(&lock_);
  return live_;
}

}  // namespace qr
