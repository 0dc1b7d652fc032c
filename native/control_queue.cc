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

bool ControlQueue::take(ControlBatch* out, size_t max) {
  out->clear();
  std::lock_guard<std::mutex> guard(mu_);
  if (pending_.meta.empty()) {
    notified_ = false;
    return false;
  }
  if (pending_.meta.size() <= max) {
    std::swap(pending_, *out);
    return true;
  }
  // The oldest `max` go up; the rest move to the front (offsets shift by what left).
  const ControlMeta& next = pending_.meta[max];
  uint32_t cut = next.offset;
  out->meta.assign(pending_.meta.begin(), pending_.meta.begin() + static_cast<std::ptrdiff_t>(max));
  out->data.assign(pending_.data.begin(), pending_.data.begin() + cut);
  pending_.meta.erase(pending_.meta.begin(), pending_.meta.begin() + static_cast<std::ptrdiff_t>(max));
  pending_.data.erase(pending_.data.begin(), pending_.data.begin() + cut);
  for (ControlMeta& m : pending_.meta) m.offset -= cut;
  return true;
}

}  // namespace qr
