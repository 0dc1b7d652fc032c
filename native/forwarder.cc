#include "forwarder.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <system_error>

#include "bridge_frame.h"
#include "wire_checks.h"

namespace qr {

Forwarder::Forwarder(const ForwarderConfig& config, std::function<void()> wake)
    : config_(config),
      wake_(std::move(wake)),
      control_(config.controlQueueDatagrams, config.controlQueueBytes) {}

Forwarder::~Forwarder() { stop(); }

void Forwarder::closeSockets() {
  for (UdpSocket& s : sockets_) {
    if (s.fd >= 0) close(s.fd);
    s.fd = -1;
  }
}

bool Forwarder::start(SysError* err) {
  if (started_) {
    *err = SysError::invalid("forwarder already started");
    return false;
  }
  started_ = true;
  UdpSocketOptions opts;
  opts.host = config_.host;
  opts.port = config_.port;
  opts.bufferBytes = config_.socketBufferBytes;
  opts.reusePort = config_.workers > 1;
  opts.gro = config_.gro;
  for (int i = 0; i < config_.workers; i++) {
    UdpSocket socket;
    if (!openUdpSocket(opts, &socket, err)) {
      closeSockets();
      stopped_ = true;
      return false;
    }
    sockets_.push_back(socket);
    // Port 0: the first socket picks the port, the others join it.
    opts.port = socket.port;
  }
  family_ = sockets_[0].family;
  port_ = sockets_[0].port;
  address_ = formatBoundAddress(sockets_[0].bound);
  groEnabled_ = sockets_[0].groEnabled;

  WorkerShared shared;
  shared.routes = &routes_;
  shared.control = &control_;
  shared.wake = wake_;
  shared.maxDatagramSize = config_.maxDatagramSize;
  shared.stopping = &stopping_;
  shared.gsoSendOk = &gsoSendOk_;
  for (const UdpSocket& s : sockets_) workers_.push_back(std::make_unique<ForwardingWorker>(shared, s.fd, s.groEnabled));

  // Forwarding threads never take signals: the runtime's handlers belong to its own threads.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  bool ok = true;
  for (size_t i = 0; i < workers_.size() && ok; i++) {
    try {
      ForwardingWorker* worker = workers_[i].get();
      threads_.emplace_back([worker] { worker->run(); });
      char name[16];
      snprintf(name, sizeof name, "qr-fwd-%u", static_cast<unsigned>(i % 1000));
      pthread_setname_np(threads_.back().native_handle(), name);
    } catch (const std::system_error& e) {
      *err = SysError::fromErrno(e.code().value(), "pthread_create");
      ok = false;
    }
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!ok) stop();
  return ok;
}

void Forwarder::stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true, std::memory_order_release);
  // Wakes a thread blocked in recvmmsg (it returns at once) or in sendmmsg (EPIPE).
  for (const UdpSocket& s : sockets_) shutdown(s.fd, SHUT_RDWR);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  closeSockets();
}

size_t Forwarder::send(const OutDatagram* items, size_t count) {
  if (stopped_ || sockets_.empty() || count == 0) return 0;
  std::vector<struct mmsghdr> msgs(count);
  std::vector<struct iovec> iov(count);
  std::vector<SockAddr> to(count);
  for (size_t i = 0; i < count; i++) {
    to[i] = items[i].to;
    iov[i].iov_base = const_cast<uint8_t*>(items[i].data);
    iov[i].iov_len = items[i].length;
    std::memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_name = &to[i].ss;
    msgs[i].msg_hdr.msg_namelen = to[i].len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  size_t done = 0;
  size_t sent = 0;
  while (done < count) {
    int rc = sendmmsg(sockets_[0].fd, msgs.data() + done, static_cast<unsigned>(count - done), MSG_DONTWAIT);
    if (rc > 0) {
      done += rc;
      sent += rc;
      continue;
    }
    if (rc < 0 && errno == EINTR) continue;
    countSendError();
    done++;
  }
  return sent;
}

void Forwarder::finishHandovers() {
  if (stopped_) return;
  routes_.finishHandovers([this](RouteTable& table) {
    handoverBytes_.clear();
    handoverForwards_.clear();
    handoverSends_.clear();
    control_.rewrite([&](ControlMeta& m, const uint8_t* bytes) {
      // The queue shows only what a route in hand-over may take: no REG, no relay line, no copy.
      if (!table.mayBeInHandover(m.from)) return true;
      Route* route = table.findLocked(m.from);
      if (route == nullptr || !route->inHandover) return true;
      // A bridge route whose relay has no keys yet leaves it to the control plane, which wraps it.
      const BridgeLink* bridge = table.bridgeOf(*route);
      if (bridge != nullptr && !bridge->member->hasKeys()) return true;
      if (!route->admit(m.length)) {
        handoverCounts_.unansweredDrops++;
        return false;
      }
      if (bridge != nullptr) {
        if (!appendFrame(*bridge, bytes, m.length, table.destinationLocked(*route))) return false;
      } else {
        handoverForwards_.push_back(QueuedForward{handoverBytes_.size(), m.length, table.destinationLocked(*route)});
        handoverBytes_.insert(handoverBytes_.end(), bytes, bytes + m.length);
      }
      if (route->markActive(table.epoch())) handoverActive_.push_back(table.idOf(*route));
      handoverCounts_.forwarded(route->secondToFirst, 1, m.length);
      if (!route->wantsCopy(bytes, m.length)) return false;
      m.routeId = table.idOf(*route);
      m.observed = true;
      return true;
    });
    for (const QueuedForward& f : handoverForwards_) {
      handoverSends_.push_back(OutDatagram{handoverBytes_.data() + f.offset, f.length, f.to});
    }
    // Sent before the routes leave hand-over (the write lock is still held): these are older
    // than anything the forwarding threads will send for the same sources.
    send(handoverSends_.data(), handoverSends_.size());
    if (!handoverActive_.empty()) table.logActive(handoverActive_);
  });
}

bool Forwarder::appendFrame(const BridgeLink& link, const uint8_t* bytes, uint32_t length, const SockAddr& to) {
  if (length + kBridgeHeader + link.sidLength + kBridgeTag > config_.maxDatagramSize) {
    handoverCounts_.bridgeOversize++;
    return false;
  }
  BridgeKey key;
  uint64_t epoch = 0;
  uint32_t counter = 0;
  uint64_t sentAt = wallClockMs();
  if (!link.member->nextTx(sentAt, &key, &epoch, &counter)) return false;
  size_t offset = handoverBytes_.size();
  handoverBytes_.resize(offset + kBridgeHeader + link.sidLength + length + kBridgeTag);
  uint8_t* out = handoverBytes_.data() + offset;
  uint32_t header = writeBridgeHeader(out, key.id, sentAt, epoch, counter, link.sid, link.sidLength);
  std::memcpy(out + header, bytes, length);
  if (!handoverSealer_.seal(key, out + kBridgeIvAt, out, header + length, nullptr, 0, out + header + length)) {
    handoverBytes_.resize(offset);
    handoverCounts_.sendErrors++;
    return false;
  }
  handoverForwards_.push_back(QueuedForward{offset, static_cast<uint32_t>(header + length + kBridgeTag), to});
  handoverCounts_.bridgeFramed++;
  return true;
}

bool Forwarder::socketBuffers(int* receive, int* send) const {
  if (sockets_.empty()) return false;
  *receive = sockets_[0].receiveBuffer;
  *send = sockets_[0].sendBuffer;
  for (const UdpSocket& s : sockets_) {
    if (s.receiveBuffer < *receive) *receive = s.receiveBuffer;
    if (s.sendBuffer < *send) *send = s.sendBuffer;
  }
  return true;
}

NativeCounts Forwarder::totals() {
  NativeCounts t;
  for (const auto& w : workers_) t += w->counters();
  t += handoverCounts_;
  t.controlPackets = control_.handedUp();
  t.sendErrors += controlSendErrors_.load(std::memory_order_relaxed);
  return t;
}

}  // namespace qr
