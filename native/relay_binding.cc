#include "relay_binding.h"

#include "napi_util.h"
#include "wire_checks.h"

namespace qr {

Napi::Function NativeRelay::Define(Napi::Env env) {
  return DefineClass(env, "NativeRelay",
                     {
                         InstanceMethod("local", &NativeRelay::Local),
                         InstanceMethod("info", &NativeRelay::Info),
                         InstanceMethod("takeControl", &NativeRelay::TakeControl),
                         InstanceMethod("sendBatch", &NativeRelay::SendBatch),
                         InstanceMethod("setRoute", &NativeRelay::SetRoute),
                         InstanceMethod("finishHandovers", &NativeRelay::FinishHandovers),
                         InstanceMethod("deleteRoute", &NativeRelay::DeleteRoute),
                         InstanceMethod("setBridgeRoute", &NativeRelay::SetBridgeRoute),
                         InstanceMethod("setBridgeMember", &NativeRelay::SetBridgeMember),
                         InstanceMethod("forgetBridgeMember", &NativeRelay::ForgetBridgeMember),
                         InstanceMethod("bridgeNonce", &NativeRelay::BridgeNonce),
                         InstanceMethod("bridgeAdmit", &NativeRelay::BridgeAdmit),
                         InstanceMethod("drainActivity", &NativeRelay::DrainActivity),
                         InstanceMethod("routeCounters", &NativeRelay::RouteCounters),
                         InstanceMethod("counters", &NativeRelay::Counters),
                         InstanceMethod("socketBuffers", &NativeRelay::SocketBuffers),
                         InstanceMethod("close", &NativeRelay::Close),
                     });
}

// new NativeRelay({ host, port, maxDatagramSize, socketBufferBytes, workers, gro }, wake)
NativeRelay::NativeRelay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRelay>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throwType(env, "NativeRelay(options, wake): options object and wake function required");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  ForwarderConfig config;
  double port = 0, maxSize = 0, buffer = 0, workers = 0;
  if (!readString(env, o.Get("host"), "host", &config.host)) return;
  if (!readInt(env, o.Get("port"), "port", 0, 65535, &port)) return;
  if (!readInt(env, o.Get("maxDatagramSize"), "maxDatagramSize", 1, 65535, &maxSize)) return;
  if (!readInt(env, o.Get("socketBufferBytes"), "socketBufferBytes", 0, 1 << 30, &buffer)) return;
  if (!readInt(env, o.Get("workers"), "workers", 1, 64, &workers)) return;
  Napi::Value gro = o.Get("gro");
  if (!gro.IsBoolean()) {
    throwType(env, "gro must be a boolean");
    return;
  }
  config.port = static_cast<uint16_t>(port);
  config.maxDatagramSize = static_cast<uint32_t>(maxSize);
  config.socketBufferBytes = static_cast<int>(buffer);
  config.workers = static_cast<int>(workers);
  config.gro = gro.As<Napi::Boolean>().Value();

  wake_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "quic-relay-control", 0, 1);
  hasWake_ = true;
  Napi::ThreadSafeFunction wake = wake_;
  forwarder_ = std::make_unique<Forwarder>(config, [wake]() mutable { wake.NonBlockingCall(); });
  SysError err;
  if (!forwarder_->start(&err)) {
    shutdown();
    toJsError(env, err).ThrowAsJavaScriptException();
  }
}

NativeRelay::~NativeRelay() { shutdown(); }

void NativeRelay::shutdown() {
  if (closed_) return;
  closed_ = true;
  // Threads are joined before the function is released: no call can follow the release.
  if (forwarder_) forwarder_->stop();
  if (hasWake_) wake_.Release();
  hasWake_ = false;
}

// After close() the threads are joined and every call that would change something (takeControl,
// sendBatch, setRoute, deleteRoute, drainActivity) does nothing and returns its empty value, so
// the reads (local, info, routeCounters, counters) report the relay as it was at close.
Napi::Value NativeRelay::Local(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("address", forwarder_->address());
  out.Set("port", forwarder_->port());
  out.Set("family", forwarder_->family() == AF_INET6 ? "IPv6" : "IPv4");
  return out;
}

Napi::Value NativeRelay::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("workers", forwarder_->workers());
  out.Set("gro", forwarder_->groEnabled());
  out.Set("gso", forwarder_->gsoSendOk());
  return out;
}

// takeControl([max]): the oldest pending datagrams, at most `max` (default all). Returns null
// (and returns the credit) when nothing is pending or after close(); otherwise
// { data: ArrayBuffer, meta: Float64Array [offset, length, routeId, observed, port] x n, addresses: string[] }.
Napi::Value NativeRelay::TakeControl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double max = 0;
  if (info.Length() > 0 && !info[0].IsUndefined() && !readInt(env, info[0], "max", 1, 1e9, &max)) return env.Undefined();
  size_t limit = max > 0 ? static_cast<size_t>(max) : SIZE_MAX;
  if (closed_ || !forwarder_->control().take(&taken_, limit)) return env.Null();
  size_t n = taken_.meta.size();
  Napi::ArrayBuffer data = Napi::ArrayBuffer::New(env, taken_.data.size());
  if (!taken_.data.empty()) std::memcpy(data.Data(), taken_.data.data(), taken_.data.size());
  Napi::Float64Array meta = Napi::Float64Array::New(env, n * 5);
  Napi::Array addresses = Napi::Array::New(env, n);
  Napi::Value lastText;
  const PeerKey* lastKey = nullptr;
  int family = forwarder_->family();
  for (size_t i = 0; i < n; i++) {
    const ControlMeta& m = taken_.meta[i];
    meta[i * 5] = m.offset;
    meta[i * 5 + 1] = m.length;
    meta[i * 5 + 2] = static_cast<double>(m.routeId);
    meta[i * 5 + 3] = m.observed ? 1 : 0;
    meta[i * 5 + 4] = m.from.port;
    if (lastKey == nullptr || std::memcmp(lastKey->addr, m.from.addr, 16) != 0) {
      lastText = Napi::String::New(env, formatAddress(m.from, family));
      lastKey = &m.from;
    }
    addresses.Set(static_cast<uint32_t>(i), lastText);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("meta", meta);
  out.Set("addresses", addresses);
  return out;
}

// sendBatch(datagrams: Uint8Array[], addresses: string[], ports: number[]) -> number sent (0 after close())
Napi::Value NativeRelay::SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return Napi::Number::New(env, 0);
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray()) {
    throwType(env, "sendBatch(datagrams, addresses, ports): three arrays required");
    return env.Undefined();
  }
  Napi::Array bufs = info[0].As<Napi::Array>();
  Napi::Array addrs = info[1].As<Napi::Array>();
  Napi::Array ports = info[2].As<Napi::Array>();
  uint32_t n = bufs.Length();
  if (addrs.Length() != n || ports.Length() != n) {
    throwType(env, "sendBatch: arrays must have the same length");
    return env.Undefined();
  }
  std::vector<OutDatagram> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value b = bufs.Get(i);
    Napi::Value a = addrs.Get(i);
    Napi::Value p = ports.Get(i);
    // One bad entry must not cost the others: it is counted as a send error, like an unreachable address.
    if (!b.IsTypedArray() || b.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !a.IsString() ||
        !p.IsNumber()) {
      forwarder_->countSendError();
      continue;
    }
    Napi::Uint8Array bytes = b.As<Napi::Uint8Array>();
    double port = p.As<Napi::Number>().DoubleValue();
    OutDatagram d{bytes.Data(), bytes.ByteLength(), {}};
    std::string text = a.As<Napi::String>().Utf8Value();
    if (!(port >= 0 && port <= 65535) ||
        !parseEndpoint(text.c_str(), static_cast<uint16_t>(port), forwarder_->family(), &d.to, nullptr)) {
      forwarder_->countSendError();  // unreachable from this socket: counted, never thrown
      continue;
    }
    out.push_back(d);
  }
  return Napi::Number::New(env, static_cast<double>(forwarder_->send(out.data(), out.size())));
}

// setRoute(id, fromAddress, fromPort, toAddress, toPort, observeBudget, unansweredLimit[, cidLength[, deferHandover[, secondToFirst]]]);
// a no-op after close(). cidLength 0..20 (default 0). With deferHandover the route is queued and
// goes in at the next finishHandovers(), together with every change queued before it, in
// hand-over until then; otherwise it is set and its hand-over ends before setRoute returns.
// secondToFirst (default false) counts what the route forwards in the secondToFirst counters too.
Napi::Value NativeRelay::SetRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return env.Undefined();
  double id = 0, fromPort = 0, toPort = 0, budget = 0, limit = 0, cidLength = 0;
  std::string from, to;
  if (info.Length() < 7) {
    throwType(env, "setRoute(id, fromAddress, fromPort, toAddress, toPort, observeBudget, unansweredLimit[, cidLength[, deferHandover[, secondToFirst]]])");
    return env.Undefined();
  }
  if (!readInt(env, info[0], "id", 0, 9007199254740991.0, &id) || !readString(env, info[1], "fromAddress", &from) ||
      !readInt(env, info[2], "fromPort", 0, 65535, &fromPort) || !readString(env, info[3], "toAddress", &to) ||
      !readInt(env, info[4], "toPort", 0, 65535, &toPort) ||
      !readInt(env, info[5], "observeBudget", 0, 1e9, &budget) ||
      !readInt(env, info[6], "unansweredLimit", 0, 9007199254740991.0, &limit)) {
    return env.Undefined();
  }
  if (info.Length() > 7 && !info[7].IsUndefined() && !readInt(env, info[7], "cidLength", 0, kMaxCidLength, &cidLength)) {
    return env.Undefined();
  }
  bool deferHandover = false;
  bool secondToFirst = false;
  if (!readOptionalBool(env, info, 8, "deferHandover", &deferHandover) ||
      !readOptionalBool(env, info, 9, "secondToFirst", &secondToFirst)) {
    return env.Undefined();
  }
  RouteChange change;
  SockAddr fromAddr;
  int family = forwarder_->family();
  if (!parseEndpoint(from.c_str(), static_cast<uint16_t>(fromPort), family, &fromAddr, &change.from)) {
    throwType(env, "setRoute: fromAddress is not an address this socket can receive from: " + from);
    return env.Undefined();
  }
  if (!parseEndpoint(to.c_str(), static_cast<uint16_t>(toPort), family, &change.to, nullptr)) {
    throwType(env, "setRoute: toAddress is not an address this socket can send to: " + to);
    return env.Undefined();
  }
  change.id = static_cast<int64_t>(id);
  change.observeBudget = static_cast<int64_t>(budget);
  change.unansweredLimit = static_cast<uint64_t>(limit);
  change.cidLength = static_cast<uint8_t>(cidLength);
  change.secondToFirst = secondToFirst;
  applyRoute(change, deferHandover);
  return env.Undefined();
}

void NativeRelay::applyRoute(RouteChange& change, bool deferHandover) {
  if (deferHandover) {
    forwarder_->routes().queue(change);
  } else {
    forwarder_->routes().set(change);
    forwarder_->finishHandovers();
  }
}

BridgeMember* NativeRelay::memberArg(const Napi::CallbackInfo& info, size_t at, SockAddr* address) {
  Napi::Env env = info.Env();
  std::string text;
  double port = 0;
  if (info.Length() < at + 2) {
    throwType(env, "relayAddress and relayPort required");
    return nullptr;
  }
  if (!readString(env, info[at], "relayAddress", &text) || !readInt(env, info[at + 1], "relayPort", 0, 65535, &port)) {
    return nullptr;
  }
  PeerKey key;
  if (!parseEndpoint(text.c_str(), static_cast<uint16_t>(port), forwarder_->family(), address, &key)) {
    throwType(env, "not a relay address this socket can reach: " + text);
    return nullptr;
  }
  BridgeMember* member = forwarder_->members().get(key);
  if (member == nullptr) throwType(env, "too many fleet members");
  return member;
}

// setBridgeRoute(id, kind "out"|"in", sessionId, localAddress, localPort, relayAddress, relayPort,
//   observeBudget, unansweredLimit, cidLength, deferHandover, secondToFirst); a no-op after close().
// "out": datagrams from the local peer go to the relay wrapped in frames for the session. "in":
// the relay's frames for the session are delivered to the local peer. Replaced and deleted like
// any route (deleteRoute(id)).
Napi::Value NativeRelay::SetBridgeRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return env.Undefined();
  if (info.Length() < 12) {
    throwType(env, "setBridgeRoute(id, kind, sessionId, localAddress, localPort, relayAddress, relayPort, observeBudget, unansweredLimit, cidLength, deferHandover, secondToFirst)");
    return env.Undefined();
  }
  double id = 0, localPort = 0, budget = 0, limit = 0, cidLength = 0;
  std::string kind, sid, local;
  if (!readInt(env, info[0], "id", 0, 9007199254740991.0, &id) || !readString(env, info[1], "kind", &kind) ||
      !readString(env, info[2], "sessionId", &sid) || !readString(env, info[3], "localAddress", &local) ||
      !readInt(env, info[4], "localPort", 0, 65535, &localPort) ||
      !readInt(env, info[7], "observeBudget", 0, 1e9, &budget) ||
      !readInt(env, info[8], "unansweredLimit", 0, 9007199254740991.0, &limit) ||
      !readInt(env, info[9], "cidLength", 0, kMaxCidLength, &cidLength)) {
    return env.Undefined();
  }
  bool deferHandover = false, secondToFirst = false;
  if (!readOptionalBool(env, info, 10, "deferHandover", &deferHandover) ||
      !readOptionalBool(env, info, 11, "secondToFirst", &secondToFirst)) {
    return env.Undefined();
  }
  if (kind != "out" && kind != "in") {
    throwType(env, "kind must be \"out\" or \"in\"");
    return env.Undefined();
  }
  if (sid.empty() || sid.size() > kMaxSessionId) {
    throwType(env, "sessionId must have 1.." + std::to_string(kMaxSessionId) + " bytes");
    return env.Undefined();
  }
  SockAddr relayAddr;
  BridgeMember* member = memberArg(info, 5, &relayAddr);
  if (member == nullptr) return env.Undefined();
  auto link = std::make_shared<BridgeLink>();
  link->kind = kind == "out" ? BridgeLink::Kind::Out : BridgeLink::Kind::In;
  link->member = member;
  link->sidLength = static_cast<uint8_t>(sid.size());
  std::memcpy(link->sid, sid.data(), sid.size());
  link->virtualKey = bridgeVirtualKey(link->sid, link->sidLength);
  RouteChange change;
  SockAddr localAddr;
  PeerKey localKey;
  if (!parseEndpoint(local.c_str(), static_cast<uint16_t>(localPort), forwarder_->family(), &localAddr, &localKey)) {
    throwType(env, "setBridgeRoute: localAddress is not an address this socket can reach: " + local);
    return env.Undefined();
  }
  if (link->kind == BridgeLink::Kind::Out) {
    change.from = localKey;
    change.to = relayAddr;
  } else {
    change.from = link->virtualKey;
    change.to = localAddr;
  }
  change.id = static_cast<int64_t>(id);
  change.observeBudget = static_cast<int64_t>(budget);
  change.unansweredLimit = static_cast<uint64_t>(limit);
  change.cidLength = static_cast<uint8_t>(cidLength);
  change.secondToFirst = secondToFirst;
  change.bridge = std::move(link);
  applyRoute(change, deferHandover);
  return env.Undefined();
}

// setBridgeMember(relayAddress, relayPort, txKeyId, txKey, rxKeyIds, rxKeys, replayWindowMs): the
// keys of frames to and from that relay (16-byte Uint8Arrays), as the bridge codec derives them.
Napi::Value NativeRelay::SetBridgeMember(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return env.Undefined();
  SockAddr address;
  BridgeMember* member = memberArg(info, 0, &address);
  if (member == nullptr) return env.Undefined();
  auto readKey = [&](const Napi::Value& id, const Napi::Value& bytes, BridgeKey* out) {
    double keyId = 0;
    if (!readInt(env, id, "key id", 0, 255, &keyId)) return false;
    if (!bytes.IsTypedArray() || bytes.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        bytes.As<Napi::Uint8Array>().ByteLength() != sizeof out->key) {
      return throwType(env, "a bridge key must be a Uint8Array of 16 bytes");
    }
    out->id = static_cast<uint8_t>(keyId);
    std::memcpy(out->key, bytes.As<Napi::Uint8Array>().Data(), sizeof out->key);
    return true;
  };
  if (info.Length() < 7 || !info[4].IsArray() || !info[5].IsArray()) {
    throwType(env, "setBridgeMember(relayAddress, relayPort, txKeyId, txKey, rxKeyIds, rxKeys, replayWindowMs)");
    return env.Undefined();
  }
  BridgeKey tx;
  if (!readKey(info[2], info[3], &tx)) return env.Undefined();
  Napi::Array ids = info[4].As<Napi::Array>();
  Napi::Array keys = info[5].As<Napi::Array>();
  if (ids.Length() != keys.Length() || ids.Length() == 0 || ids.Length() > 64) {
    throwType(env, "rxKeyIds and rxKeys: 1..64 of each, as many ids as keys");
    return env.Undefined();
  }
  std::vector<BridgeKey> rx(ids.Length());
  for (uint32_t i = 0; i < ids.Length(); i++) {
    if (!readKey(ids.Get(i), keys.Get(i), &rx[i])) return env.Undefined();
  }
  double windowMs = 0;
  if (!readInt(env, info[6], "replayWindowMs", 1, 9007199254740991.0, &windowMs)) return env.Undefined();
  BridgeSealer::prepare();
  member->setKeys(tx, rx, static_cast<uint64_t>(windowMs));
  return env.Undefined();
}

// forgetBridgeMember(relayAddress, relayPort): the relay left; its keys, window and sequence go.
Napi::Value NativeRelay::ForgetBridgeMember(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return env.Undefined();
  SockAddr address;
  BridgeMember* member = memberArg(info, 0, &address);
  if (member != nullptr) member->forget();
  return env.Undefined();
}

// bridgeNonce(relayAddress, relayPort) -> [epoch, counter]: the next nonce towards that relay,
// from the sequence the forwarding threads use too.
Napi::Value NativeRelay::BridgeNonce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SockAddr address;
  BridgeMember* member = memberArg(info, 0, &address);
  if (member == nullptr) return env.Undefined();
  uint64_t epoch = 0;
  uint32_t counter = 0;
  member->next(wallClockMs(), &epoch, &counter);
  Napi::Float64Array out = Napi::Float64Array::New(env, 2);
  out[0] = static_cast<double>(epoch);
  out[1] = counter;
  return out;
}

// bridgeAdmit(relayAddress, relayPort, epoch, counter) -> whether the nonce was new (and is now
// recorded), in the window the forwarding threads use too.
Napi::Value NativeRelay::BridgeAdmit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SockAddr address;
  BridgeMember* member = memberArg(info, 0, &address);
  if (member == nullptr) return env.Undefined();
  double epoch = 0, counter = 0;
  if (!readInt(env, info[2], "epoch", 0, 281474976710655.0, &epoch) ||
      !readInt(env, info[3], "counter", 0, 4294967295.0, &counter)) {
    return env.Undefined();
  }
  return Napi::Boolean::New(env, member->admit(static_cast<uint64_t>(epoch), static_cast<uint32_t>(counter)));
}

// finishHandovers(): ends the hand-over of every route set since the last call (see Forwarder).
Napi::Value NativeRelay::FinishHandovers(const Napi::CallbackInfo& info) {
  if (!closed_) forwarder_->finishHandovers();
  return info.Env().Undefined();
}

// deleteRoute(id[, deferred]) -> whether a route was removed (false after close(), and when
// deferred: the removal is queued for the next finishHandovers(), in order with queued setRoutes)
Napi::Value NativeRelay::DeleteRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return Napi::Boolean::New(env, false);
  double id = 0;
  bool deferred = false;
  if (info.Length() < 1 || !readInt(env, info[0], "id", -9007199254740991.0, 9007199254740991.0, &id) ||
      !readOptionalBool(env, info, 1, "deferred", &deferred)) {
    return env.Undefined();
  }
  if (deferred) {
    RouteChange change;
    change.remove = true;
    change.id = static_cast<int64_t>(id);
    forwarder_->routes().queue(change);
    return Napi::Boolean::New(env, false);
  }
  return Napi::Boolean::New(env, forwarder_->routes().remove(static_cast<int64_t>(id)));
}

// drainActivity() -> ids of routes that forwarded since the last call ([] after close())
Napi::Value NativeRelay::DrainActivity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) return Napi::Array::New(env, 0);
  std::vector<int64_t> ids = forwarder_->routes().drainActivity();
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) out.Set(static_cast<uint32_t>(i), static_cast<double>(ids[i]));
  return out;
}

// routeCounters(id) -> { observeLeft }, or undefined for an unknown id
Napi::Value NativeRelay::RouteCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throwType(env, "routeCounters(id): id must be a number");
    return env.Undefined();
  }
  int64_t observeLeft = 0;
  int64_t id = static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue());
  if (!forwarder_->routes().observeLeft(id, &observeLeft)) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("observeLeft", static_cast<double>(observeLeft > 0 ? observeLeft : 0));
  return out;
}

// counters() -> every counter of native/counters.h by name
Napi::Value NativeRelay::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeCounts t = forwarder_->totals();
  Napi::Object out = Napi::Object::New(env);
#define QUIC_RELAY_SET_COUNTER(name) out.Set(#name, static_cast<double>(t.name));
  QUIC_RELAY_NATIVE_COUNTERS(QUIC_RELAY_SET_COUNTER)
#undef QUIC_RELAY_SET_COUNTER
  return out;
}

// socketBuffers() -> { receive, send }: the smallest SO_RCVBUF / SO_SNDBUF over the sockets as
// getsockopt reported them after the request (Linux: double the usable size; halved in
// src/dataplane/socket-buffers.ts), or undefined if a value could not be read. Answers after close().
Napi::Value NativeRelay::SocketBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int receive = 0, send = 0;
  if (!forwarder_ || !forwarder_->socketBuffers(&receive, &send) || receive <= 0 || send <= 0) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("receive", receive);
  out.Set("send", send);
  return out;
}

Napi::Value NativeRelay::Close(const Napi::CallbackInfo& info) {
  shutdown();
  return info.Env().Undefined();
}

}  // namespace qr
