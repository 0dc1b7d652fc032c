#include "control_queue.h"

namespace qr {

bool ControlQueue::push(const ControlBatch& batch) {
  uint64_t taken = 0;
  bool wake = false;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (const ControlMeta& m : batch.meta) {
      if (pending_.meta.size() >= maxDatagrams_ || pending_.data.size() + m.length > maxBytes_) break;
      pending_.add(m.from, m.routeId, m.observed, batch.data.data() + m.offset, m.length);
      taken++;
    }
    if (taken > 0 && !notified_) {
      notified_ = true;
      wake = true;
    }
  }
  accepted_.fetch_add(taken, std::memory_order_relaxed);
  if (taken < batch.meta.size()) drops_.fetch_add(batch.meta.size() - taken, std::memory_order_relaxed);
  return wake;
}

bool ControlQueue::take(ControlBatch* out) {
  out->clear();
  std::lock_guard<std::mutex> guard(mu_);
  if (pending_.meta.empty()) {
    notified_ = false;
    return false;
  }
  std::swap(pending_, *out);
  return true;
}

}  // namespace qr
