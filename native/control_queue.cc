#include "control_queue.h"

#include "wire_checks.h"

namespace qr {

namespace {

// Room kept for REG datagrams once the queue is full of other traffic, so that a flood of
// junk cannot keep registrations from reaching the control plane.
constexpr size_t kRegReserveDatagrams = 1024;
constexpr size_t kRegReserveBytes = 256 * 1024;
// Taken datagrams are dropped from the front of the buffers once there are this many and they
// are at least half of what the buffers hold: each is moved once at most, on average.
constexpr size_t kDropTakenAt = 1024;

}  // namespace

ControlPush ControlQueue::push(const ControlBatch& batch) {
  size_t taken = 0;
  bool wake = false;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (const ControlMeta& m : batch.meta) {
      const uint8_t* bytes = batch.data.data() + m.offset;
      bool reg = isReg(bytes, m.length);
      size_t maxDatagrams = maxDatagrams_ + (reg ? kRegReserveDatagrams : 0);
      size_t maxBytes = maxBytes_ + (reg ? kRegReserveBytes : 0);
      if (pendingCount() >= maxDatagrams || bytes_ + m.length > maxBytes) continue;
      pending_.add(m.from, m.routeId, m.observed, bytes, m.length);
      bool candidate = !m.observed && !forControlPlane(bytes, m.length);
      pending_.meta.back().handoverCandidate = candidate;
      candidates_ += candidate ? 1 : 0;
      bytes_ += m.length;
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
  size_t pending = pendingCount();
  if (pending == 0) {
    notified_ = false;
    return false;
  }
  if (pending <= max && head_ == 0) {
    std::swap(pending_, *out);
    bytes_ = 0;
    candidates_ = 0;
    return true;
  }
  // The oldest `n` go up, their offsets counted from the first one's; the rest stay where they are.
  size_t n = pending < max ? pending : max;
  auto first = pending_.meta.begin() + static_cast<std::ptrdiff_t>(head_);
  auto last = first + static_cast<std::ptrdiff_t>(n);
  uint32_t start = first->offset;
  uint32_t cut = last == pending_.meta.end() ? static_cast<uint32_t>(pending_.data.size()) : last->offset;
  out->meta.assign(first, last);
  out->data.assign(pending_.data.begin() + start, pending_.data.begin() + cut);
  for (ControlMeta& m : out->meta) {
    m.offset -= start;
    candidates_ -= m.handoverCandidate ? 1 : 0;
  }
  bytes_ -= cut - start;
  head_ += n;
  if (head_ == pending_.meta.size()) {
    pending_.clear();
    head_ = 0;
  } else if (head_ >= kDropTakenAt && 2 * head_ >= pending_.meta.size()) {
    dropTaken();
  }
  return true;
}

void ControlQueue::dropTaken() {
  if (head_ == 0) return;
  if (head_ >= pending_.meta.size()) {
    pending_.clear();
    head_ = 0;
    return;
  }
  uint32_t cut = pending_.meta[head_].offset;
  pending_.meta.erase(pending_.meta.begin(), pending_.meta.begin() + static_cast<std::ptrdiff_t>(head_));
  pending_.data.erase(pending_.data.begin(), pending_.data.begin() + cut);
  for (ControlMeta& m : pending_.meta) m.offset -= cut;
  head_ = 0;
}

}  // namespace qr
