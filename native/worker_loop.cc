#include "worker_loop.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#include <cstring>

#include "udp_offload.h"
#include "wire_checks.h"

namespace qr {

namespace {

// Errors that mean "this kernel/device cannot segment": stop trying GSO altogether.
inline bool gsoUnsupported(int err) { return err == EIO || err == EOPNOTSUPP || err == ENOPROTOOPT; }

}  // namespace

ForwardingWorker::ForwardingWorker(const WorkerShared& shared, int fd, bool gro)
    : shared_(shared), fd_(fd), gro_(gro) {
  slotSize_ = gro_ ? 65536 : shared_.maxDatagramSize;
  // Slots a power of two apart would all start in the same cache set; an odd number of
  // extra cache lines spreads the 64 slot heads (where small datagrams live) over 64 sets.
  slotStride_ = ((slotSize_ + 4095) & ~size_t{4095}) + 17 * 64;
  receiveControlSize_ = CMSG_SPACE(sizeof(int));
  sendControlSize_ = CMSG_SPACE(sizeof(uint16_t));
  receiveBuffer_.reset(new uint8_t[slotStride_ * kBatch]);
  receiveMsgs_.resize(kBatch);
  receiveIov_.resize(kBatch);
  receiveFrom_.resize(kBatch);
  receiveControl_.assign(receiveControlSize_ * kBatch, 0);
  for (int i = 0; i < kBatch; i++) {
    receiveIov_[i].iov_base = receiveBuffer_.get() + slotStride_ * i;
    receiveIov_[i].iov_len = slotSize_;
    std::memset(&receiveMsgs_[i], 0, sizeof(struct mmsghdr));
    receiveMsgs_[i].msg_hdr.msg_iov = &receiveIov_[i];
    receiveMsgs_[i].msg_hdr.msg_iovlen = 1;
    receiveMsgs_[i].msg_hdr.msg_name = &receiveFrom_[i];
  }
  resetReceiveHeaders(kBatch);
  sendMsgs_.resize(kSendSlots);
  sendIov_.resize(kSendSlots * kIovPerSend);
  frameScratch_.assign(kFrameScratch * kSendSlots, 0);
  sendTo_.resize(kSendSlots);
  sendControl_.assign(sendControlSize_ * kSendSlots, 0);
}

void ForwardingWorker::resetReceiveHeaders(int count) {
  for (int i = 0; i < count; i++) {
    struct msghdr& h = receiveMsgs_[i].msg_hdr;
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_control = gro_ ? receiveControl_.data() + receiveControlSize_ * i : nullptr;
    h.msg_controllen = gro_ ? receiveControlSize_ : 0;
    h.msg_flags = 0;
  }
}

void ForwardingWorker::run() {
  // Blocking receive, like the ideal forwarder: one syscall per wake-up. Stop() sets
  // `stopping` and then shuts the socket down, which wakes a blocked recvmmsg.
  for (;;) {
    int received = recvmmsg(fd_, receiveMsgs_.data(), kBatch, MSG_WAITFORONE, nullptr);
    if (shared_.stopping->load(std::memory_order_acquire)) return;
    if (received > 0) {
      processBatch(received);
      resetReceiveHeaders(received);
      continue;
    }
    if (received < 0 && errno == EINTR) continue;
    local_.receiveErrors++;
    publish();
    if (received < 0 && (errno == EBADF || errno == ENOTSOCK)) return;
  }
}

uint32_t ForwardingWorker::groSegmentSize(const struct msghdr& msg) const {
  if (!gro_ || msg.msg_controllen == 0) return 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(const_cast<struct msghdr*>(&msg), c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int size = 0;
      std::memcpy(&size, CMSG_DATA(c), sizeof size);
      return size > 0 ? static_cast<uint32_t>(size) : 0;
    }
  }
  return 0;
}

void ForwardingWorker::processBatch(int received) {
  staging_.clear();
  sendCount_ = 0;
  nowMs_ = 0;
  Route* cachedRoute = nullptr;
  PeerKey cachedKey{};
  bool haveCached = false;
  shared_.routes->readLock();
  epoch_ = shared_.routes->epoch();
  for (int i = 0; i < received; i++) {
    const struct msghdr& h = receiveMsgs_[i].msg_hdr;
    const uint8_t* data = static_cast<const uint8_t*>(receiveIov_[i].iov_base);
    uint32_t length = receiveMsgs_[i].msg_len;
    uint32_t segment = groSegmentSize(h);
    if ((h.msg_flags & MSG_TRUNC) != 0) {
      local_.oversize += (segment > 0 && length > segment) ? (length + segment - 1) / segment : 1;
      continue;
    }
    PeerKey key;
    if (!keyFromSockaddr(reinterpret_cast<const sockaddr*>(&receiveFrom_[i]), &key)) continue;
    // Bulk flows arrive as runs from one source: skip the hash lookup for repeats.
    if (!haveCached || !(key == cachedKey)) {
      cachedRoute = shared_.routes->findLocked(key);
      cachedKey = key;
      haveCached = true;
    }
    if (segment > 0 && length > segment) {
      handleCoalesced(key, cachedRoute, data, length, segment);
    } else {
      handleSingle(key, cachedRoute, data, length);
    }
  }
  // Pushed before the read lock is released: once a route change holds the write lock, every
  // datagram staged under the old state is in the queue, where finishHandovers() can see it.
  bool wake = false;
  if (!staging_.meta.empty()) {
    ControlPush pushed = shared_.control->push(staging_);
    local_.controlQueueDrops += staging_.meta.size() - pushed.taken;
    wake = pushed.wake;
  }
  shared_.routes->readUnlock();
  if (!becameActive_.empty()) shared_.routes->logActive(becameActive_);
  flushSends();
  // And what the sends counted (errors), before the wake-up: the control plane, once woken, sees it all.
  publish();
  if (wake) shared_.wake();
}

void ForwardingWorker::handleSingle(const PeerKey& key, Route* route, const uint8_t* data, uint32_t length) {
  if (length > shared_.maxDatagramSize) {
    local_.oversize++;
    return;
  }
  if (route == nullptr) {
    if (!(isBridgeFrame(data, length) && receiveBridge(key, data, length))) staging_.add(key, -1, false, data, length);
    return;
  }
  shared_.routes->answerReverseLocked(*route);
  // A route in hand-over queues its datagrams behind the source's older ones (finishHandovers).
  if (route->inHandover || forControlPlane(data, length)) {
    staging_.add(key, shared_.routes->idOf(*route), false, data, length);
    return;
  }
  if (!route->admit(length)) {
    local_.unansweredDrops++;
    return;
  }
  if (route->bridged) {
    const BridgeLink* bridge = shared_.routes->bridgeOf(*route);
    if (length + kBridgeHeader + bridge->sidLength + kBridgeTag > shared_.maxDatagramSize) {
      local_.bridgeOversize++;
      return;
    }
    // No keys yet: the control plane wraps it (and counts it) itself.
    if (!addBridgeSend(route, data, length)) {
      staging_.add(key, shared_.routes->idOf(*route), false, data, length);
      return;
    }
  } else {
    addSend(shared_.routes->destinationLocked(*route), data, length, 0);
  }
  if (route->markActive(epoch_)) becameActive_.push_back(shared_.routes->idOf(*route));
  local_.forwarded(route->secondToFirst, 1, length);
  if (route->wantsCopy(data, length)) staging_.add(key, shared_.routes->idOf(*route), true, data, length);
}

void ForwardingWorker::handleCoalesced(const PeerKey& key, Route* route, const uint8_t* data, uint32_t length,
                                       uint32_t segment) {
  local_.groBuffers++;
  bool whole = route != nullptr && !route->inHandover && !route->bridged && segment <= shared_.maxDatagramSize &&
               shared_.gsoSendOk->load(std::memory_order_relaxed);
  for (uint32_t off = 0; whole && off < length; off += segment) {
    uint32_t part = length - off < segment ? length - off : segment;
    if (forControlPlane(data + off, part)) whole = false;
  }
  if (!whole) {
    for (uint32_t off = 0; off < length; off += segment) {
      uint32_t part = length - off < segment ? length - off : segment;
      handleSingle(key, route, data + off, part);
    }
    return;
  }
  uint32_t segments = (length + segment - 1) / segment;
  shared_.routes->answerReverseLocked(*route);
  // Forwarded whole, so charged whole: all of the buffer's datagrams leave, or none.
  if (!route->admit(length)) {
    local_.unansweredDrops += segments;
    return;
  }
  const uint32_t chunk = segment * kMaxSegmentsPerSend;
  const CompactAddr to = shared_.routes->destinationLocked(*route);
  for (uint32_t off = 0; off < length; off += chunk) {
    uint32_t part = length - off < chunk ? length - off : chunk;
    addSend(to, data + off, part, static_cast<uint16_t>(part > segment ? segment : 0));
  }
  if (route->markActive(epoch_)) becameActive_.push_back(shared_.routes->idOf(*route));
  local_.forwarded(route->secondToFirst, segments, length);
  // Watched per segment, as if each had come alone.
  if (route->observeBudget.load(std::memory_order_relaxed) <= 0) return;
  for (uint32_t off = 0; off < length; off += segment) {
    uint32_t part = length - off < segment ? length - off : segment;
    if (route->wantsCopy(data + off, part)) staging_.add(key, shared_.routes->idOf(*route), true, data + off, part);
  }
}

void ForwardingWorker::addSend(const CompactAddr& to, const uint8_t* data, uint32_t length, uint16_t segment) {
  if (sendCount_ == kSendSlots) flushSends();
  int i = sendCount_++;
  to.expand(&sendTo_[i]);
  struct iovec* iov = &sendIov_[i * kIovPerSend];
  iov->iov_base = const_cast<uint8_t*>(data);
  iov->iov_len = length;
  struct msghdr& h = sendMsgs_[i].msg_hdr;
  h.msg_name = &sendTo_[i].ss;
  h.msg_namelen = sendTo_[i].len;
  h.msg_iov = iov;
  h.msg_iovlen = 1;
  h.msg_flags = 0;
  if (segment == 0) {
    h.msg_control = nullptr;
    h.msg_controllen = 0;
    return;
  }
  h.msg_control = sendControl_.data() + sendControlSize_ * i;
  h.msg_controllen = sendControlSize_;
  struct cmsghdr* c = CMSG_FIRSTHDR(&h);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
  local_.gsoSends++;
}

uint64_t ForwardingWorker::now() {
  if (nowMs_ == 0) nowMs_ = wallClockMs();
  return nowMs_;
}

bool ForwardingWorker::addBridgeSend(Route* route, const uint8_t* data, uint32_t length) {
  const BridgeLink& link = *shared_.routes->bridgeOf(*route);
  BridgeKey key;
  uint64_t epoch = 0;
  uint32_t counter = 0;
  uint64_t sentAt = now();
  if (!link.member->nextTx(sentAt, &key, &epoch, &counter)) return false;
  if (sendCount_ == kSendSlots) flushSends();
  uint8_t* scratch = frameScratch_.data() + kFrameScratch * sendCount_;
  uint32_t header = writeBridgeHeader(scratch, key.id, sentAt, epoch, counter, link.sid, link.sidLength);
  uint8_t* tag = scratch + header;
  if (!sealer_.seal(key, scratch + kBridgeIvAt, scratch, header, data, length, tag)) {
    local_.sendErrors++;
    return true;
  }
  addSend(shared_.routes->destinationLocked(*route), scratch, header, 0);
  // The same slot, two more pieces: the payload where it was received, then the tag.
  struct msghdr& h = sendMsgs_[sendCount_ - 1].msg_hdr;
  struct iovec* iov = h.msg_iov;
  iov[1].iov_base = const_cast<uint8_t*>(data);
  iov[1].iov_len = length;
  iov[2].iov_base = tag;
  iov[2].iov_len = kBridgeTag;
  h.msg_iovlen = 3;
  local_.bridgeFramed++;
  return true;
}

bool ForwardingWorker::receiveBridge(const PeerKey& from, const uint8_t* data, uint32_t length) {
  BridgeDataFrame frame;
  if (!parseBridgeData(data, length, &frame)) return false;
  Route* route = shared_.routes->findLocked(bridgeVirtualKey(frame.sessionId, frame.sessionIdLength));
  if (route == nullptr || route->inHandover || !route->bridged) return false;
  const BridgeLink& link = *shared_.routes->bridgeOf(*route);
  // Another relay than the link's: the control plane decides whether the link moves.
  if (link.kind != BridgeLink::Kind::In || !link.sameSession(frame.sessionId, frame.sessionIdLength) ||
      !(link.member->address() == from)) {
    return false;
  }
  BridgeKey key;
  uint64_t windowMs = 0;
  if (!link.member->rxKey(frame.keyId, &key, &windowMs)) {
    local_.bridgeUnknownKey++;
    return true;
  }
  if (!sealer_.verify(key, frame.iv, data, frame.body, frame.tag)) {
    local_.bridgeBadTag++;
    return true;
  }
  uint64_t clock = now();
  uint64_t skew = frame.sentAt > clock ? frame.sentAt - clock : clock - frame.sentAt;
  if (skew > windowMs || (frame.epoch > clock && frame.epoch - clock > windowMs)) {
    local_.bridgeStale++;
    return true;
  }
  if (!link.member->admit(frame.epoch, frame.counter)) {
    local_.bridgeReplayed++;
    return true;
  }
  if (!route->admit(frame.payloadLength)) {
    local_.bridgeUnanswered++;
    return true;
  }
  addSend(shared_.routes->destinationLocked(*route), frame.payload, frame.payloadLength, 0);
  if (route->markActive(epoch_)) becameActive_.push_back(shared_.routes->idOf(*route));
  local_.forwarded(route->secondToFirst, 1, frame.payloadLength);
  local_.bridgeDelivered++;
  return true;
}

void ForwardingWorker::flushSends() {
  // Counts first: whoever receives one of these datagrams sees it counted.
  if (sendCount_ > 0) publish();
  int done = 0;
  while (done < sendCount_) {
    int sent = sendmmsg(fd_, sendMsgs_.data() + done, sendCount_ - done, 0);
    if (sent > 0) {
      done += sent;
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    int err = errno;
    const struct msghdr& failed = sendMsgs_[done].msg_hdr;
    if (failed.msg_controllen != 0) {
      // The kernel refused the coalesced send: deliver the same datagrams one by one.
      if (gsoUnsupported(err)) shared_.gsoSendOk->store(false, std::memory_order_relaxed);
      uint16_t segment = 0;
      std::memcpy(&segment, CMSG_DATA(CMSG_FIRSTHDR(const_cast<struct msghdr*>(&failed))), sizeof segment);
      local_.gsoFallbacks++;
      sendSplit(failed, segment);
    } else {
      local_.sendErrors++;
    }
    done++;
  }
  sendCount_ = 0;
}

void ForwardingWorker::sendSplit(const struct msghdr& msg, uint16_t segment) {
  const uint8_t* data = static_cast<const uint8_t*>(msg.msg_iov[0].iov_base);
  size_t length = msg.msg_iov[0].iov_len;
  for (size_t off = 0; off < length; off += segment) {
    size_t part = length - off < segment ? length - off : segment;
    ssize_t rc;
    do {
      rc = sendto(fd_, data + off, part, 0, static_cast<const sockaddr*>(msg.msg_name), msg.msg_namelen);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) local_.sendErrors++;
  }
}

void ForwardingWorker::publish() { published_.publish(local_); }

}  // namespace qr
