// JS class `NativeRelay`: a thin wrapper over Forwarder. Validates arguments, converts
// addresses and batches, and owns the ThreadSafeFunction that wakes the control plane.
#pragma once

#include <napi.h>

#include <memory>

#include "forwarder.h"

namespace qr {

class NativeRelay : public Napi::ObjectWrap<NativeRelay> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeRelay(const Napi::CallbackInfo& info);
  ~NativeRelay() override;

 private:
  Napi::Value Local(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value TakeControl(const Napi::CallbackInfo& info);
  Napi::Value SendBatch(const Napi::CallbackInfo& info);
  Napi::Value SetRoute(const Napi::CallbackInfo& info);
  Napi::Value FinishHandovers(const Napi::CallbackInfo& info);
  Napi::Value DeleteRoute(const Napi::CallbackInfo& info);
  Napi::Value SetBridgeRoute(const Napi::CallbackInfo& info);
  Napi::Value SetBridgeMember(const Napi::CallbackInfo& info);
  Napi::Value ForgetBridgeMember(const Napi::CallbackInfo& info);
  Napi::Value BridgeNonce(const Napi::CallbackInfo& info);
  Napi::Value BridgeAdmit(const Napi::CallbackInfo& info);
  // The member at info[at] (address), info[at + 1] (port), created if new; null (and a TypeError) if unusable.
  BridgeMember* memberArg(const Napi::CallbackInfo& info, size_t at, SockAddr* address);
  void applyRoute(RouteChange& change, bool deferHandover);
  Napi::Value DrainActivity(const Napi::CallbackInfo& info);
  Napi::Value RouteCounters(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value SocketBuffers(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void shutdown();

  std::unique_ptr<Forwarder> forwarder_;
  Napi::ThreadSafeFunction wake_;
  bool hasWake_ = false;
  bool closed_ = false;
  ControlBatch taken_;  // reused between takeControl calls
};

}  // namespace qr
