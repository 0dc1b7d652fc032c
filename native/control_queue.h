// Datagrams waiting for the control plane. Forwarding threads append whole batches; the JS
// thread takes everything at once. At most one wake-up is outstanding: a thread asks for a
// notification only when the queue turns non-empty while JS is idle, and JS goes idle only
// when it finds the queue empty (the credit). When the queue is full, datagrams are dropped
// and counted instead of blocking forwarding (a reserve stays open for REG datagrams).
#pragma once

#include <atomic>
#include <cstdint>
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

class ControlQueue {
 public:
  ControlQueue(size_t maxDatagrams, size_t maxBytes) : maxDatagrams_(maxDatagrams), maxBytes_(maxBytes) {}

  // Returns true when the caller must wake the JS thread.
  bool push(const ControlBatch& batch);
  // JS thread: moves the pending datagrams into `out` (cleared first). Returns false and goes
  // idle (returns the credit) when nothing is pending.
  bool take(ControlBatch* out);

  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t drops() const { return drops_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  ControlBatch pending_;
  bool notified_ = false;
  const size_t maxDatagrams_;
  const size_t maxBytes_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> drops_{0};
};

}  // namespace qr
