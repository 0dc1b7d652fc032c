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

RouteTable::RouteTable() {
  // Writers first: with several forwarding threads the read side is almost always held,
  // and route changes from the control plane must not wait behind a stream of batches.
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&lock_, &attr);
  pthread_rwlockattr_destroy(&attr);
}

RouteTable::~RouteTable() { pthread_rwlock_destroy(&lock_); }

void RouteTable::eraseLocked(Route* route) {
  auto src = bySource_.find(route->from);
  if (src != bySource_.end() && src->second == route) bySource_.erase(src);
  byId_.erase(route->id);
}

void RouteTable::set(int64_t id, const PeerKey& from, const SockAddr& to, int64_t observeBudget) {
  auto fresh = std::make_unique<Route>();
  fresh->id = id;
  fresh->from = from;
  fresh->to = to;
  fresh->observeBudget.store(observeBudget, std::memory_order_relaxed);
  WriteGuard guard(&lock_);
  auto sameSource = bySource_.find(from);
  if (sameSource != bySource_.end() && sameSource->second->id != id) eraseLocked(sameSource->second);
  auto sameId = byId_.find(id);
  if (sameId != byId_.end()) {
    eraseLocked(sameId->second.get());
  }
  bySource_[from] = fresh.get();
  byId_[id] = std::move(fresh);
}

bool RouteTable::remove(int64_t id) {
  WriteGuard guard(&lock_);
  auto it = byId_.find(id);
  if (it == byId_.end()) return false;
  eraseLocked(it->second.get());
  return true;
}

void RouteTable::clear() {
  WriteGuard guard(&lock_);
  bySource_.clear();
  byId_.clear();
}

std::vector<int64_t> RouteTable::drainActivity() {
  std::vector<int64_t> ids;
  ReadGuard guard(&lock_);
  for (auto& entry : byId_) {
    if (entry.second->active.exchange(false, std::memory_order_relaxed)) ids.push_back(entry.first);
  }
  return ids;
}

bool RouteTable::counters(int64_t id, uint64_t* packets, uint64_t* bytes) {
  ReadGuard guard(&lock_);
  auto it = byId_.find(id);
  if (it == byId_.end()) return false;
  *packets = it->second->packets.load(std::memory_order_relaxed);
  *bytes = it->second->bytes.load(std::memory_order_relaxed);
  return true;
}

size_t RouteTable::size() {
  ReadGuard guard(&lock_);
  return byId_.size();
}

}  // namespace qr
