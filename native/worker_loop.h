// The hot loop of one forwarding thread: recvmmsg a batch, forward datagrams of known routes
// with one sendmmsg (coalesced GRO buffers stay coalesced and leave with UDP_SEGMENT), stage
// the rest (no route, REG, possible relay lines, routes in hand-over) for the control plane and
// push them with one lock. Routes with an unanswered limit drop what would pass it. No allocation
// per packet and one route-table read lock per batch.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bridge_seal.h"
#include "control_queue.h"
#include "counters.h"
#include "route_table.h"

namespace qr {

struct WorkerShared {
  RouteTable* routes = nullptr;
  ControlQueue* control = nullptr;
  std::function<void()> wake;           // wakes the JS thread; thread-safe
  uint32_t maxDatagramSize = 0;
  std::atomic<bool>* stopping = nullptr;  // set before the sockets are shut down
  std::atomic<bool>* gsoSendOk = nullptr;  // cleared when the kernel refuses UDP_SEGMENT
};

class ForwardingWorker {
 public:
  static constexpr int kBatch = 64;
  static constexpr int kSendSlots = 512;
  static constexpr int kMaxSegmentsPerSend = 64;

  ForwardingWorker(const WorkerShared& shared, int fd, bool gro);
  ForwardingWorker(const ForwardingWorker&) = delete;
  ForwardingWorker& operator=(const ForwardingWorker&) = delete;

  // Runs until `stopping` is set and the socket shut down.
  void run();
  // This thread's counts as of its last batch; safe from any thread.
  NativeCounts counters() const { return published_.load(); }

 private:
  void processBatch(int received);
  void handleSingle(const PeerKey& key, Route* route, const uint8_t* data, uint32_t length);
  void handleCoalesced(const PeerKey& key, Route* route, const uint8_t* data, uint32_t length, uint32_t segment);
  void addSend(const CompactAddr& to, const uint8_t* data, uint32_t length, uint16_t segment);
  // Outbound bridge route: wraps the datagram in a frame (header and tag in this slot's scratch,
  // the payload where it was received); false when the member has no keys yet.
  bool addBridgeSend(Route* route, const uint8_t* data, uint32_t length);
  // A bridge frame from a source without a route: delivered here when an inbound route for its
  // session expects its sender; false leaves it to the control plane untouched.
  bool receiveBridge(const PeerKey& from, const uint8_t* data, uint32_t length);
  uint64_t now();
  void flushSends();
  void sendSplit(const struct msghdr& msg, uint16_t segment);
  uint32_t groSegmentSize(const struct msghdr& msg) const;
  void resetReceiveHeaders(int count);
  void publish();

  WorkerShared shared_;
  int fd_;
  bool gro_;
  size_t slotSize_;
  size_t slotStride_;
  // Left uninitialised: a page becomes resident only once a datagram is received into it, so
  // 64 GRO slots of 64 KB cost what small datagrams touch (a page a slot), not 4 MB up front.
  std::unique_ptr<uint8_t[]> receiveBuffer_;
  std::vector<struct mmsghdr> receiveMsgs_;
  std::vector<struct iovec> receiveIov_;
  std::vector<sockaddr_storage> receiveFrom_;
  std::vector<uint8_t> receiveControl_;
  size_t receiveControlSize_;

  std::vector<struct mmsghdr> sendMsgs_;
  std::vector<struct iovec> sendIov_;
  std::vector<SockAddr> sendTo_;
  std::vector<uint8_t> sendControl_;
  size_t sendControlSize_;
  int sendCount_ = 0;
  static constexpr int kIovPerSend = 3;
  static constexpr size_t kFrameScratch = kBridgeHeader + kMaxSessionId + kBridgeTag;
  std::vector<uint8_t> frameScratch_;  // per send slot: a bridge frame's header, session id and tag
  BridgeSealer sealer_;
  uint64_t nowMs_ = 0;  // wall clock, read at most once per batch (0: not yet)

  ControlBatch staging_;
  uint16_t epoch_ = 0;                 // the route table's activity epoch, read once per batch
  std::vector<int64_t> becameActive_;  // ids of routes this batch made active, logged after it
  NativeCounts local_;  // written by this thread only, published once per batch
  PublishedCounts published_;
};

}  // namespace qr
