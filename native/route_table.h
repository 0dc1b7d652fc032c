// Routes installed by the control plane: source address -> destination, shared by all
// forwarding threads. Readers take the lock once per receive batch, never per packet;
// per-route counters are relaxed atomics so readers never write shared structure.
// Two routes that point at each other (A: X -> S, B: S -> X) are linked as each other's
// reverse, so that a datagram from S (looked up as B) answers A's unanswered-bytes limit.
// A new route starts in hand-over: its datagrams queue behind those of its source that are
// still on their way through the control plane, and finishHandovers() forwards them in order.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "bridge_link.h"
#include "net_addr.h"
#include "slot_index.h"
#include "wire_checks.h"

namespace qr {

// A slot that holds no route (SlotIndex::kNone too).
constexpr uint32_t kNoSlot = 0xFFFFFFFFu;

// The largest unanswered limit a route keeps (32 bits, as on the TS plane); larger ones are cut to it.
constexpr uint32_t kMaxUnansweredLimit = 0x7FFFFFFFu;

// The largest observation budget a route keeps (16 bits, MAX_OBSERVE_BUDGET on the TS side: the
// control plane gives 64); larger ones are cut to it.
constexpr int16_t kMaxObserveBudget = 0x7FFF;

// An id too large for Route::id32 (or negative): the route's id is kept apart (RouteTable::idOf).
constexpr uint32_t kWideId = 0xFFFFFFFFu;

// Laid out to be small (a million sessions are two million routes): narrow fields, ordered to
// leave few gaps between them, 4-byte aligned. A route's destination is where its reverse route
// comes from (RouteTable::destinationLocked): it is kept apart only for a route with no reverse,
// or one whose reverse comes from elsewhere (an outbound bridge route). Its id is kept in 32 bits
// (the control plane's ids are small) unless it does not fit: then apart (RouteTable::idOf).
struct Route {
  uint32_t id32 = kWideId;
  PeerKey from{};
  // Set under the write lock. cidLength: the length of the destination connection ID in the
  // source's short headers (0: not watched). inHandover: while set the route forwards nothing
  // itself; its datagrams go to the control queue, where finishHandovers() forwards them (see
  // RouteTable). reverseLimited: `reverse` has an unanswered limit, so that the per-packet test
  // without limits reads only this route. secondToFirst: the route carries its session's
  // second-to-first direction (what it forwards is also counted in the secondToFirst counters).
  uint8_t cidLength : 5;
  bool inHandover : 1;
  bool reverseLimited : 1;
  bool secondToFirst : 1;
  // Set under the write lock: the route crosses the bridge (see bridge_link.h); its link is kept
  // by the table apart (RouteTable::bridgeOf), so the many routes that do not pay for a pointer.
  bool bridged : 1;
  // Set under the write lock. toV6: the destination is sent to as IPv6 (CompactAddr::v6).
  // toApart: the destination is kept apart (RouteTable::destinationLocked), not taken from the
  // reverse route's source.
  bool toV6 : 1;
  bool toApart : 1;
  // The activity epoch in which the route last forwarded (0: never since it was set), in 16 bits:
  // see RouteTable::drainActivity. A route that forwards again exactly 65,535 epochs later is
  // logged one epoch late (its first datagram then looks already logged).
  std::atomic<uint16_t> activeEpoch{0};
  std::atomic<int16_t> observeBudget{0};  // at most kMaxObserveBudget
  // Set under the write lock: the slot of the route from `to` back to `from`, or kNoSlot. A free
  // slot holds the next free slot here instead (RouteTable::freeHead_).
  uint32_t reverse = kNoSlot;
  uint32_t unansweredLimit = 0;           // 0: no limit; at most kMaxUnansweredLimit
  std::atomic<uint32_t> unanswered{0};    // bytes forwarded since `to` last sent (never above the limit)
  // The last short-header DCID forwarded, as a keyed hash folded to 32 bits with the low bit set
  // (0: none seen yet): 4 bytes instead of the 20 of the DCID itself. Keyed per process
  // (kPeerKeySeed), so a DCID whose hash matches the last one cannot be chosen from outside; by
  // chance one change in 2^31 goes unseen (not copied up). Relaxed: several threads may compare
  // and store it; a lost store costs at most one extra copy.
  std::atomic<uint32_t> cidHash{0};
  // What routes forward is counted per thread and per direction (counters.h), not per route: a
  // million sessions would pay 32 MB for counts nothing reads.
  static_assert(kMaxCidLength <= 24, "a DCID is hashed as three 8-byte words");

  Route()
      : cidLength(0), inHandover(false), reverseLimited(false), secondToFirst(false), bridged(false), toV6(false),
        toApart(false) {}

  // Claims one observation from the budget; exact even with several threads.
  bool takeObservation() {
    int16_t left = observeBudget.load(std::memory_order_relaxed);
    while (left > 0) {
      if (observeBudget.compare_exchange_weak(left, static_cast<int16_t>(left - 1), std::memory_order_relaxed)) return true;
    }
    return false;
  }

  // Whether a datagram this route forwards is also copied up for observation, while the budget
  // lasts: a long header, or a short header whose DCID differs from the last one seen (which it
  // then becomes). Once the budget is spent no copy can follow, so the DCID is no longer tracked.
  bool wantsCopy(const uint8_t* data, uint32_t length) {
    if (isLongHeader(data, length)) return takeObservation();
    if (!hasShortHeaderDcid(data, length, cidLength) || observeBudget.load(std::memory_order_relaxed) <= 0) return false;
    return cidChanged(data + 1) && takeObservation();
  }

  // Compares the DCID at `dcid` (cidLength bytes) with the last one seen, by hash; stores it if it differs.
  bool cidChanged(const uint8_t* dcid) {
    uint64_t words[3] = {};
    std::memcpy(words, dcid, cidLength);
    uint64_t wide = mix64(mix64(mix64(words[0] ^ kPeerKeySeed) ^ words[1]) ^ words[2] ^ cidLength);
    uint32_t h = static_cast<uint32_t>(wide ^ (wide >> 32)) | 1;
    if (cidHash.load(std::memory_order_relaxed) == h) return false;
    cidHash.store(h, std::memory_order_relaxed);
    return true;
  }

  // Whether `length` more bytes may go to `to` under the unanswered limit (and charges them).
  bool admit(uint64_t length) { return unansweredLimit == 0 || chargeUnanswered(length); }

  // Charges `length` bytes against the unanswered limit; false (nothing charged) if they do not
  // fit. A compare-exchange rather than add-then-undo: a concurrent reset is never undone below 0.
  bool chargeUnanswered(uint64_t length) {
    uint32_t used = unanswered.load(std::memory_order_relaxed);
    do {
      if (length > static_cast<uint64_t>(unansweredLimit - used)) return false;
    } while (!unanswered.compare_exchange_weak(used, static_cast<uint32_t>(used + length), std::memory_order_relaxed));
    return true;
  }

  // The route forwarded; true when this is its first datagram of activity epoch `epoch`: the
  // caller then logs the route's id (RouteTable::logActive).
  bool markActive(uint16_t epoch) {
    if (activeEpoch.load(std::memory_order_relaxed) == epoch) return false;
    activeEpoch.store(epoch, std::memory_order_relaxed);
    return true;
  }
};
static_assert(sizeof(Route) <= 44, "a route's size is multiplied by millions");

// A route change queued by the JS thread, applied by finishHandovers() with the others.
struct RouteChange {
  bool remove = false;
  int64_t id = -1;
  PeerKey from{};
  SockAddr to{};
  int64_t observeBudget = 0;
  uint64_t unansweredLimit = 0;
  uint8_t cidLength = 0;
  bool secondToFirst = false;
  std::shared_ptr<const BridgeLink> bridge;
};

// Where a route logically leads, for linking reverses: its destination's key, or for an outbound
// bridge route the virtual key of the remote peer.
inline PeerKey logicalDestination(const CompactAddr& to, const BridgeLink* bridge) {
  return bridge != nullptr && bridge->kind == BridgeLink::Kind::Out ? bridge->virtualKey : to.key;
}

// A small set of hashes (no keys): membership may be a false positive, never a false negative.
class HashFilter {
 public:
  // Keeps a small table for reuse; a large one (after a round of many hand-overs) is released, so
  // clearing never costs more than a few cache lines' worth per round.
  void clear() {
    size_ = 0;
    if (slots_.size() > 4096) std::vector<uint64_t>().swap(slots_);
    else std::fill(slots_.begin(), slots_.end(), 0);
  }
  void add(uint64_t h) {
    h |= 1;  // 0 marks an empty slot
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(h);
    size_++;
  }
  bool mayContain(uint64_t h) const {
    if (size_ == 0) return false;
    h |= 1;
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      if (slots_[i] == h) return true;
      if (slots_[i] == 0) return false;
    }
  }

 private:
  void place(uint64_t h) {
    size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i] != 0 && slots_[i] != h) i = (i + 1) & mask;
    slots_[i] = h;
  }
  void grow() {
    std::vector<uint64_t> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, 0);
    for (uint64_t h : old) {
      if (h != 0) place(h);
    }
  }
  std::vector<uint64_t> slots_;
  size_t size_ = 0;
};

class RouteTable {
 public:
  RouteTable();
  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Replaces any route with the same id or the same source; a replacement starts with fresh counters
  // (an unanswered count of 0, no DCID seen). `unansweredLimit` 0 means no limit; `cidLength`
  // 0..kMaxCidLength (0: short headers not watched); `secondToFirst`: which direction's counters
  // its datagrams go to. The route starts in hand-over.
  void set(const RouteChange& change);
  bool remove(int64_t id);
  // JS thread: the change waits for the next finishHandovers(), which applies every queued change
  // in order under one write lock. A control batch's changes cost one lock, not one per route:
  // the forwarding threads (which may share the JS thread's core) are waited for once.
  void queue(const RouteChange& change) { queued_.push_back(change); }

  // Ends every hand-over: under the write lock (no forwarding thread is inside a batch, and every
  // batch has pushed what it staged), `forwardQueued(*this)` forwards what waits in the control
  // queue for routes in hand-over; then those routes forward by themselves. Nothing to do (no
  // lock taken) when no route is in hand-over.
  template <typename ForwardQueued>
  void finishHandovers(ForwardQueued&& forwardQueued) {
    if (!handoversPending_ && queued_.empty()) return;
    pthread_rwlock_wrlock(&lock_);
    for (const RouteChange& change : queued_) applyLocked(change);
    queued_.clear();
    handoverSources_.clear();
    for (uint32_t slot : handovers_) {
      if (at(slot).inHandover) handoverSources_.add(PeerKeyHash{}(at(slot).from));
    }
    forwardQueued(*this);
    for (uint32_t slot : handovers_) at(slot).inHandover = false;
    handovers_.clear();
    handoversPending_ = false;
    pthread_rwlock_unlock(&lock_);
  }

  // Forwarding threads: hold the read lock around a batch of findLocked() calls.
  void readLock() { pthread_rwlock_rdlock(&lock_); }
  void readUnlock() { pthread_rwlock_unlock(&lock_); }
  Route* findLocked(const PeerKey& from) const {
    uint32_t slot = bySource_.find(from);
    return slot == kNoSlot ? nullptr : &at(slot);
  }
  // Where `route` forwards to: the source of its reverse route, or the destination kept apart.
  // Under the read or the write lock.
  CompactAddr destinationLocked(const Route& route) const {
    if (!route.toApart) return CompactAddr{at(route.reverse).from, route.toV6};
    return apart_.find(&route)->second;
  }
  // The bridge link of a route across the bridge (Route::bridged), null for any other route.
  // Under the read or the write lock.
  const BridgeLink* bridgeOf(const Route& route) const {
    if (!route.bridged) return nullptr;
    auto it = bridges_.find(&route);
    return it == bridges_.end() ? nullptr : it->second.get();
  }
  // A datagram from `route`'s source answers its reverse route: that route's count starts again.
  // Per packet, so a plain load first; only a non-zero count is written.
  void answerReverseLocked(const Route& route) const {
    if (!route.reverseLimited) return;
    std::atomic<uint32_t>& count = at(route.reverse).unanswered;
    if (count.load(std::memory_order_relaxed) != 0) count.store(0, std::memory_order_relaxed);
  }
  // Inside finishHandovers' forwardQueued: false means `from` has no route in hand-over (true may
  // be wrong, then findLocked tells). Checks a small set of this round's sources, so walking a
  // long control queue costs little more than the queue itself.
  bool mayBeInHandover(const PeerKey& from) const { return handoverSources_.mayContain(PeerKeyHash{}(from)); }

  // Forwarding threads: the current activity epoch, read once per batch and given to Route::markActive.
  uint16_t epoch() const { return epoch_.load(std::memory_order_relaxed); }
  // The id of `route`, read under the read or the write lock.
  int64_t idOf(const Route& route) const { return route.id32 != kWideId ? route.id32 : wideIds_.find(&route)->second; }
  // Appends the ids of routes that became active (Route::markActive said true), and clears `ids`.
  void logActive(std::vector<int64_t>& ids) {
    std::lock_guard<std::mutex> guard(activityMutex_);
    activityLog_.insert(activityLog_.end(), ids.begin(), ids.end());
    ids.clear();
  }
  // Ids of the live routes logged active since the last call, and a new epoch begins. Costs what
  // was active, never a walk of every route. A route active in both epochs may appear twice.
  std::vector<int64_t> drainActivity();
  // The observations route `id` may still copy up; false for an unknown id.
  bool observeLeft(int64_t id, int64_t* left);

 private:
  // Routes live in fixed chunks that never move, so a Route* stays valid under the read lock.
  static constexpr uint32_t kChunkBits = 10;

  struct SourceOf {
    const RouteTable* table;
    const PeerKey& operator()(uint32_t slot) const { return table->at(slot).from; }
  };
  struct IdOf {
    const RouteTable* table;
    int64_t operator()(uint32_t slot) const { return table->idOf(table->at(slot)); }
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
  using ById = IdSlotIndex<IdHash, IdOf>;
  static_assert(BySource::kNone == kNoSlot && ById::kNone == kNoSlot, "one value for no slot");

  Route& at(uint32_t slot) const { return chunks_[slot >> kChunkBits][slot & ((1u << kChunkBits) - 1)]; }
  uint32_t allocate();
  void eraseLocked(uint32_t slot);
  void setLocked(const RouteChange& change);
  bool removeLocked(int64_t id);
  void applyLocked(const RouteChange& change) {
    if (change.remove) removeLocked(change.id);
    else setLocked(change);
  }

  pthread_rwlock_t lock_;
  std::vector<std::unique_ptr<Route[]>> chunks_;
  // The links of the routes across the bridge (few), by route: the table's own copies, changed
  // under the write lock and freed when their route goes (no reader is inside a batch then).
  std::unordered_map<const Route*, std::unique_ptr<const BridgeLink>> bridges_;
  // The destinations of the routes with Route::toApart (few: a route waits here for its reverse),
  // changed under the write lock.
  std::unordered_map<const Route*, CompactAddr> apart_;
  // The ids of the routes with Route::id32 == kWideId, changed under the write lock.
  std::unordered_map<const Route*, int64_t> wideIds_;
  // Free slots, linked through Route::reverse (kNoSlot ends the list): removing a million routes
  // allocates nothing. A vector of them was reallocated and copied into fresh pages as it grew,
  // holding the JS thread and the write lock for milliseconds at a time in a mass expiry.
  uint32_t freeHead_ = kNoSlot;
  uint32_t highWater_ = 0;
  BySource bySource_;
  ById byId_;
  // Slots of routes set since the last finishHandovers() (some may have been removed or reused
  // since: clearing the flag of a slot that is not in hand-over changes nothing). Only the JS
  // thread sets routes and finishes hand-overs.
  std::vector<uint32_t> handovers_;
  bool handoversPending_ = false;
  // JS thread only: changes waiting for finishHandovers().
  std::vector<RouteChange> queued_;
  // Under the write lock, during finishHandovers(): the sources of the routes in hand-over.
  HashFilter handoverSources_;
  std::atomic<uint16_t> epoch_{1};
  std::mutex activityMutex_;
  std::vector<int64_t> activityLog_;  // under activityMutex_
};

}  // namespace qr
