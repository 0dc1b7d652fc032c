// Datagrams waiting for the control plane. Forwarding threads append whole batches; the JS
// thread takes everything at once. At most one wake-up is outstanding: a thread asks for a
// notification only when the queue turns non-empty while JS is idle, and JS goes idle only
// when it finds the queue empty (the credit). When the queue is full, datagrams are dropped
// instead of blocking forwarding (a reserve stays open for REG datagrams); the pushing thread
// counts what was dropped, the queue what it holds for the control plane (`handedUp`).
// Taking from a long queue costs what is taken: the oldest pending datagram is at `head_`, and
// what was taken leaves the buffers only once it is half of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "net_addr.h"

namespace qr {

struct ControlMeta {
  PeerKey from;
  int64_t routeId;
  uint32_t offset;
  uint32_t length;
  bool observed;
  // Set by the queue: neither an observed copy nor meant for the control plane (REG, relay
  // line), so a route in hand-over may take it (see ControlQueue::rewrite).
  bool handoverCandidate = false;
};

// A batch of control datagrams: payloads packed into one buffer.
struct ControlBatch {
  std::vector<uint8_t> data;
  std::vector<ControlMeta> meta;

  void clear() {
    data.clear();
    meta.clear();
  }
  void add(const PeerKey& from, int64_t routeId, bool observed, const uint8_t* bytes, uint32_t length) {
    meta.push_back(ControlMeta{from, routeId, static_cast<uint32_t>(data.size()), length, observed});
    data.insert(data.end(), bytes, bytes + length);
  }
};

// What a push did: how many of the batch's datagrams were queued (the rest were dropped), and
// whether the caller must wake the JS thread.
struct ControlPush {
  size_t taken;
  bool wake;
};

class ControlQueue {
 public:
  ControlQueue(size_t maxDatagrams, size_t maxBytes) : maxDatagrams_(maxDatagrams), maxBytes_(maxBytes) {}

  ControlPush push(const ControlBatch& batch);
  // JS thread: moves the oldest pending datagrams, at most `max`, into `out` (cleared first).
  // Returns false and goes idle (returns the credit) when nothing is pending. A bounded take
  // keeps each control batch short: a flood waits in the queue, not in one long JS turn.
  bool take(ControlBatch* out, size_t max = SIZE_MAX);

  // JS thread: `keep(meta, bytes)` sees, in order, every pending datagram a route in hand-over
  // may take (handoverCandidate) and may change its meta; those it returns false for are
  // withdrawn (the data plane dealt with them) and no longer count as handed up. Nothing is
  // walked when no pending datagram is a candidate: a REG flood's full queue costs nothing here.
  template <typename Keep>
  void rewrite(Keep&& keep) {
    std::lock_guard<std::mutex> guard(mu_);
    if (candidates_ == 0) return;
    dropTaken();
    size_t kept = 0;
    uint32_t end = 0;
    candidates_ = 0;
    for (ControlMeta& m : pending_.meta) {
      uint8_t* bytes = pending_.data.data() + m.offset;
      if (m.handoverCandidate) {
        if (!keep(m, static_cast<const uint8_t*>(bytes))) continue;
        if (m.observed) m.handoverCandidate = false;
      }
      candidates_ += m.handoverCandidate ? 1 : 0;
      if (m.offset != end) std::memmove(pending_.data.data() + end, bytes, m.length);
      m.offset = end;
      end += m.length;
      pending_.meta[kept++] = m;
    }
    handedUp_ -= pending_.meta.size() - kept;
    bytes_ = end;
    pending_.meta.resize(kept);
    pending_.data.resize(end);
  }

  // Datagrams queued for the control plane since the start, less those withdrawn.
  uint64_t handedUp() {
    std::lock_guard<std::mutex> guard(mu_);
    return handedUp_;
  }

 private:
  size_t pendingCount() const { return pending_.meta.size() - head_; }
  // Under mu_: the taken datagrams leave the buffers; offsets shift by what left.
  void dropTaken();

  std::mutex mu_;
  // Pending datagrams are pending_.meta[head_..]; their bytes start at that entry's offset.
  ControlBatch pending_;
  size_t head_ = 0;
  // Bytes of the pending datagrams, and how many of them are hand-over candidates.
  size_t bytes_ = 0;
  size_t candidates_ = 0;
  uint64_t handedUp_ = 0;
  bool notified_ = false;
  const size_t maxDatagrams_;
  const size_t maxBytes_;
};

}  // namespace qr
