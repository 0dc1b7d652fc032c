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
  if (freeHead_ != kNoSlot) {
    uint32_t slot = freeHead_;
    freeHead_ = at(slot).reverse;
    at(slot).reverse = kNoSlot;
    return slot;
  }
  if ((highWater_ >> kChunkBits) == chunks_.size()) chunks_.emplace_back(new Route[1u << kChunkBits]);
  return highWater_++;
}

void RouteTable::eraseLocked(uint32_t slot) {
  Route& route = at(slot);
  if (route.reverse != kNoSlot) {
    Route& back = at(route.reverse);
    // The route back led to this route's source: that destination is now kept apart.
    if (!back.toApart) {
      apart_[&back] = CompactAddr{route.from, back.toV6};
      back.toApart = true;
    }
    back.reverse = kNoSlot;
    back.reverseLimited = false;
    route.reverse = kNoSlot;
    route.reverseLimited = false;
  }
  if (route.toApart) {
    apart_.erase(&route);
    route.toApart = false;
  }
  bySource_.erase(route.from, slot);
  byId_.erase(idOf(route), slot);
  if (route.id32 == kWideId) wideIds_.erase(&route);
  route.id32 = kWideId;
  // finishHandovers() skips a slot of handovers_ that is no longer in hand-over.
  route.inHandover = false;
  if (route.bridged) {
    bridges_.erase(&route);
    route.bridged = false;
  }
  route.reverse = freeHead_;
  freeHead_ = slot;
}

void RouteTable::set(const RouteChange& change) {
  WriteGuard guard(&lock_);
  setLocked(change);
}

void RouteTable::setLocked(const RouteChange& change) {
  const int64_t id = change.id;
  const PeerKey& from = change.from;
  const CompactAddr to = CompactAddr::from(change.to);
  const uint32_t unansweredLimit = static_cast<uint32_t>(std::min<uint64_t>(change.unansweredLimit, kMaxUnansweredLimit));
  uint32_t sameSource = bySource_.find(from);
  if (sameSource != kNoSlot && idOf(at(sameSource)) != id) eraseLocked(sameSource);
  uint32_t sameId = byId_.find(id);
  if (sameId != kNoSlot) eraseLocked(sameId);
  // The route back from `to` to `from`, if any (found before this route is indexed, so a route
  // to its own source is not its own reverse; its old reverse was the route just replaced).
  uint32_t back = bySource_.find(logicalDestination(to, change.bridge.get()));
  if (back != kNoSlot && !(logicalDestination(destinationLocked(at(back)), bridgeOf(at(back))) == from)) back = kNoSlot;
  uint32_t slot = allocate();
  Route& route = at(slot);
  if (id >= 0 && id < static_cast<int64_t>(kWideId)) {
    route.id32 = static_cast<uint32_t>(id);
  } else {
    route.id32 = kWideId;
    wideIds_[&route] = id;
  }
  route.from = from;
  route.toV6 = to.v6;
  // Budgets above kMaxObserveBudget are cut to it, as on the TS plane.
  route.observeBudget.store(static_cast<int16_t>(std::clamp<int64_t>(change.observeBudget, 0, kMaxObserveBudget)),
                            std::memory_order_relaxed);
  route.activeEpoch.store(0, std::memory_order_relaxed);
  route.unanswered.store(0, std::memory_order_relaxed);
  route.unansweredLimit = unansweredLimit;
  route.cidLength = change.cidLength;
  route.secondToFirst = change.secondToFirst;
  route.bridged = change.bridge != nullptr;
  if (route.bridged) bridges_[&route] = std::make_unique<const BridgeLink>(*change.bridge);
  route.cidHash.store(0, std::memory_order_relaxed);
  route.inHandover = true;
  handovers_.push_back(slot);
  handoversPending_ = true;
  route.reverse = back;
  route.reverseLimited = back != kNoSlot && at(back).unansweredLimit != 0;
  // The destination is the reverse route's source, unless it comes from elsewhere (the reverse of
  // an outbound bridge route comes from the remote peer's virtual key) or there is no reverse yet.
  route.toApart = !(back != kNoSlot && at(back).from == to.key);
  if (route.toApart) apart_[&route] = to;
  if (back != kNoSlot) {
    Route& b = at(back);
    b.reverse = slot;
    b.reverseLimited = unansweredLimit != 0;
    if (b.toApart) {
      auto it = apart_.find(&b);
      if (it->second.key == from) {
        apart_.erase(it);
        b.toApart = false;
      }
    }
  }
  bySource_.insert(from, slot);
  byId_.insert(id, slot);
}

bool RouteTable::remove(int64_t id) {
  WriteGuard guard(&lock_);
  return removeLocked(id);
}

bool RouteTable::removeLocked(int64_t id) {
  uint32_t slot = byId_.find(id);
  if (slot == kNoSlot) return false;
  eraseLocked(slot);
  return true;
}

std::vector<int64_t> RouteTable::drainActivity() {
  std::vector<int64_t> logged;
  {
    std::lock_guard<std::mutex> guard(activityMutex_);
    logged.swap(activityLog_);
    // 0 means "never active": skipped when the count wraps.
    if (static_cast<uint16_t>(epoch_.fetch_add(1, std::memory_order_relaxed) + 1) == 0) epoch_.store(1, std::memory_order_relaxed);
  }
  std::vector<int64_t> ids;
  ids.reserve(logged.size());
  ReadGuard guard(&lock_);
  // A logged id whose route was deleted is left out; one now set again under the same id is
  // reported only if that route itself forwarded (a new route starts at epoch 0).
  for (int64_t id : logged) {
    uint32_t slot = byId_.find(id);
    if (slot != kNoSlot && at(slot).activeEpoch.load(std::memory_order_relaxed) != 0) ids.push_back(id);
  }
  return ids;
}

bool RouteTable::observeLeft(int64_t id, int64_t* left) {
  ReadGuard guard(&lock_);
  uint32_t slot = byId_.find(id);
  if (slot == kNoSlot) return false;
  *left = at(slot).observeBudget.load(std::memory_order_relaxed);
  return true;
}

}  // namespace qr
