// The native plane's counters, listed once. Each forwarding thread counts in plain integers and
// publishes them to atomics once per batch; the forwarder sums the threads; the binding hands the
// sums to JS under the same names. NATIVE_COUNTERS in src/dataplane/native-addon.ts is the same
// list (test/dataplane/native-binding.test.ts checks it against this addon).
#pragma once

#include <atomic>
#include <cstdint>

// X(name): every counter, in the order JS sees them. The first nine are DataPlaneCounters
// (src/dataplane/types.ts), the rest are native only.
#define QUIC_RELAY_NATIVE_COUNTERS(X)                                                    \
  X(forwardedPackets)  /* forwarded by a route without entering the control plane */   \
  X(forwardedBytes)                                                                     \
  X(controlPackets)    /* handed up to the control plane (counted by the control queue) */ \
  X(oversize)          /* dropped for exceeding maxDatagramSize */                       \
  X(controlQueueDrops) /* dropped because the control queue was full */                  \
  X(sendErrors)        /* failed sends (plus the JS thread's, added by the forwarder) */ \
  X(unansweredDrops)   /* dropped over their route's unanswered limit */                 \
  X(secondToFirstPackets) /* the part of forwardedPackets carried by second-to-first routes */ \
  X(secondToFirstBytes)                                                                 \
  X(receiveErrors)     /* failed recvmmsg calls */                                       \
  X(groBuffers)        /* coalesced (UDP_GRO) buffers received */                        \
  X(gsoSends)          /* coalesced buffers forwarded with UDP_SEGMENT */                \
  X(gsoFallbacks)      /* coalesced buffers split because the kernel refused UDP_SEGMENT */ \
  X(bridgeFramed)      /* peer datagrams sent to another relay in a bridge frame */         \
  X(bridgeDelivered)   /* bridge frames whose payload was delivered to a local peer */      \
  X(bridgeOversize)    /* peer datagrams too large to wrap in a bridge frame */             \
  X(bridgeUnanswered)  /* bridge payloads not delivered: the local peer's unanswered limit */ \
  X(bridgeUnknownKey)  /* bridge frames refused: no key with their key id */               \
  X(bridgeBadTag)      /* bridge frames refused: the tag does not verify */               \
  X(bridgeStale)       /* bridge frames refused: sent-at or epoch too far from the clock */ \
  X(bridgeReplayed)    /* bridge frames refused: their nonce was seen before */

namespace qr {

// A thread's own counts (plain: only that thread writes them), and the forwarder's sums.
struct NativeCounts {
#define QUIC_RELAY_PLAIN_FIELD(name) uint64_t name = 0;
  QUIC_RELAY_NATIVE_COUNTERS(QUIC_RELAY_PLAIN_FIELD)
#undef QUIC_RELAY_PLAIN_FIELD

  // Datagrams a route forwarded: the totals, and the second-to-first share (the other direction's
  // is the difference), so the per-direction totals are read in O(1), never summed over routes.
  void forwarded(bool secondToFirst, uint64_t datagrams, uint64_t length) {
    forwardedPackets += datagrams;
    forwardedBytes += length;
    if (secondToFirst) {
      secondToFirstPackets += datagrams;
      secondToFirstBytes += length;
    }
  }

  NativeCounts& operator+=(const NativeCounts& o) {
#define QUIC_RELAY_ADD_FIELD(name) name += o.name;
    QUIC_RELAY_NATIVE_COUNTERS(QUIC_RELAY_ADD_FIELD)
#undef QUIC_RELAY_ADD_FIELD
    return *this;
  }
};

// A thread's counts as other threads may read them: stored once per batch, read relaxed.
class PublishedCounts {
 public:
  void publish(const NativeCounts& c) {
#define QUIC_RELAY_STORE_FIELD(name) name##_.store(c.name, std::memory_order_relaxed);
    QUIC_RELAY_NATIVE_COUNTERS(QUIC_RELAY_STORE_FIELD)
#undef QUIC_RELAY_STORE_FIELD
  }

  NativeCounts load() const {
    NativeCounts c;
#define QUIC_RELAY_LOAD_FIELD(name) c.name = name##_.load(std::memory_order_relaxed);
    QUIC_RELAY_NATIVE_COUNTERS(QUIC_RELAY_LOAD_FIELD)
#undef QUIC_RELAY_LOAD_FIELD
    return c;
  }

 private:
#define QUIC_RELAY_ATOMIC_FIELD(name) std::atomic<uint64_t> name##_{0};
  QUIC_RELAY_NATIVE_COUNTERS(QUIC_RELAY_ATOMIC_FIELD)
#undef QUIC_RELAY_ATOMIC_FIELD
};

}  // namespace qr
