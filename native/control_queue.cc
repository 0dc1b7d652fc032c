#include "control_queue.h"

#include "wire_checks.h"

namespace qr {

namespace {

// Room kept for REG datagrams once the queue is full of other traffic, so that a flood of
// junk cannot keep registrations from reaching the control plane.
constexpr size_t kRegReserveDatagrams = 1024;
constexpr size_t kRegReserveBytes = 256 * 1024;

}  // namespace

ControlPush ControlQueue::push(const ControlBatch& batch) {
  size_t taken = 0;
  bool wake = false;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (const ControlMeta& m : batch.meta) {
      bool reg = isReg(batch.data.data() + m.offset, m.length);
      size_t maxDatagrams = maxDatagrams_ + (reg ? kRegReserveDatagrams : 0);
      size_t maxBytes = maxBytes_ + (reg ? kRegReserveBytes : 0);
      if (pending_.meta.size() >= maxDatagrams || pending_.data.size() + m.length > maxBytes) continue;
      pending_.add(m.from, m.routeId, m.observed, batch.data.data() + m.offset, m.length);
      taken++;
    }
    handedUp_ += taken;
    if (taken > 0 && !notified_) {
      notified_ = true;
      wake = true;
    }
  }
  return ControlPush{taken, wake};
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
