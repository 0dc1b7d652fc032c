// Module entry: the NativeRelay data plane and the GsoSocket helper used by tests and benches.
#include <napi.h>

#include "gso_sender.h"
#include "napi_util.h"
#include "relay_binding.h"

namespace qr {

// Raised whenever what JS sees of the addon changes; ABI_VERSION in src/dataplane/native-addon.ts
// must match it, or the addon is reported stale. 3: every call after close() is defined.
// 4: setRoute's cidLength and deferHandover, finishHandovers(), routeCounters' observeLeft.
// 5: socketBuffers(). 6: setRoute's secondToFirst and the secondToFirst counters, deleteRoute's
// deferred, takeControl's max.
constexpr int kAbiVersion = 7;

// new GsoSocket(host); .local(); .send(bytes, segmentSize, address, port); .close()
class GsoSocket : public Napi::ObjectWrap<GsoSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GsoSocket",
                       {InstanceMethod("local", &GsoSocket::Local), InstanceMethod("send", &GsoSocket::Send),
                        InstanceMethod("close", &GsoSocket::Close)});
  }

  explicit GsoSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GsoSocket>(info) {
    Napi::Env env = info.Env();
    std::string host;
    if (info.Length() < 1 || !readString(env, info[0], "host", &host)) return;
    SysError err;
    if (!sender_.open(host, &err)) toJsError(env, err).ThrowAsJavaScriptException();
  }

 private:
  Napi::Value Local(const Napi::CallbackInfo& info) {
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("address", formatBoundAddress(sender_.socket().bound));
    out.Set("port", sender_.socket().port);
    return out;
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double segment = 0, port = 0;
    std::string address;
    if (info.Length() < 4 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throwType(env, "send(bytes: Uint8Array, segmentSize, address, port)");
      return env.Undefined();
    }
    if (!readInt(env, info[1], "segmentSize", 0, 65535, &segment) || !readString(env, info[2], "address", &address) ||
        !readInt(env, info[3], "port", 1, 65535, &port)) {
      return env.Undefined();
    }
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    SysError err;
    if (!sender_.send(bytes.Data(), bytes.ByteLength(), static_cast<uint16_t>(segment), address.c_str(),
                      static_cast<uint16_t>(port), &err)) {
      toJsError(env, err).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    sender_.close();
    return info.Env().Undefined();
  }

  GsoSender sender_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRelay", NativeRelay::Define(env));
  exports.Set("GsoSocket", GsoSocket::Define(env));
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  return exports;
}

}  // namespace qr

Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return qr::Init(env, exports); }

NODE_API_MODULE(quic_relay_native, InitModule)
