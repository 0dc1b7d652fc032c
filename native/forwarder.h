// The native data plane's context object: it owns the sockets, the forwarding threads, the
// route table and the control queue. No napi types here; the binding wraps it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bridge_members.h"
#include "bridge_seal.h"
#include "control_queue.h"
#include "counters.h"
#include "route_table.h"
#include "sys_error.h"
#include "udp_socket.h"
#include "worker_loop.h"

namespace qr {

struct ForwarderConfig {
  std::string host;
  uint16_t port = 0;
  uint32_t maxDatagramSize = 65535;
  int socketBufferBytes = 0;
  int workers = 1;
  bool gro = true;
  size_t controlQueueDatagrams = 8192;
  size_t controlQueueBytes = 8u << 20;
};

struct OutDatagram {
  const uint8_t* data;
  size_t length;
  SockAddr to;
};

class Forwarder {
 public:
  // `wake` runs on a forwarding thread when control datagrams become pending.
  Forwarder(const ForwarderConfig& config, std::function<void()> wake);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Opens every socket, then starts one thread per socket. On failure nothing stays open.
  bool start(SysError* err);
  // Idempotent: wakes the threads (shutdown), joins them, closes the sockets.
  void stop();

  int family() const { return family_; }
  uint16_t port() const { return port_; }
  std::string address() const { return address_; }
  int workers() const { return static_cast<int>(sockets_.size()); }
  bool groEnabled() const { return groEnabled_; }
  bool gsoSendOk() const { return gsoSendOk_.load(std::memory_order_relaxed); }
  // The smallest SO_RCVBUF / SO_SNDBUF over the sockets, as getsockopt reported them at open
  // (still answered after stop()); false before start() opened any socket.
  bool socketBuffers(int* receive, int* send) const;

  RouteTable& routes() { return routes_; }
  BridgeMembers& members() { return members_; }
  ControlQueue& control() { return control_; }

  // Sends from the first socket without blocking, in order. Returns how many were sent.
  size_t send(const OutDatagram* items, size_t count);
  void countSendError() { controlSendErrors_.fetch_add(1, std::memory_order_relaxed); }
  // JS thread: ends the hand-over of every route set since the last call. What waits in the
  // control queue from their sources (datagrams that arrived before the route, or during its
  // hand-over) is forwarded by the route, in arrival order, exactly as the route would have
  // forwarded it (unanswered limit, observed copies); then the routes forward by themselves.
  void finishHandovers();
  // The threads' counts summed, plus the control queue's and the JS thread's.
  NativeCounts totals();

 private:
  void closeSockets();
  // finishHandovers: appends `bytes` wrapped in a frame for `link` to what it sends to `to`;
  // false (nothing appended) when too large to wrap (counted) or the member lost its keys.
  bool appendFrame(const BridgeLink& link, const uint8_t* bytes, uint32_t length, const SockAddr& to);

  ForwarderConfig config_;
  std::function<void()> wake_;
  RouteTable routes_;
  BridgeMembers members_;
  BridgeSealer handoverSealer_;  // JS thread only
  ControlQueue control_;
  std::vector<UdpSocket> sockets_;
  std::vector<std::unique_ptr<ForwardingWorker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> gsoSendOk_{true};
  std::atomic<uint64_t> controlSendErrors_{0};
  // JS thread only: what finishHandovers() forwarded or dropped, and its reused buffers.
  struct QueuedForward {
    size_t offset;
    uint32_t length;
    SockAddr to;
  };
  NativeCounts handoverCounts_;
  std::vector<uint8_t> handoverBytes_;
  std::vector<QueuedForward> handoverForwards_;
  std::vector<OutDatagram> handoverSends_;
  std::vector<int64_t> handoverActive_;
  bool started_ = false;
  bool stopped_ = false;
  int family_ = 0;
  uint16_t port_ = 0;
  std::string address_;
  bool groEnabled_ = false;
};

}  // namespace qr
