// Small helpers shared by the binding files: argument checks and errors carrying errno/syscall.
#pragma once

#include <napi.h>

#include <cstring>
#include <string>

#include "sys_error.h"

namespace qr {

inline Napi::Error toJsError(Napi::Env env, const SysError& e) {
  Napi::Error error = Napi::Error::New(env, e.message);
  if (e.code != 0) {
    error.Set("errno", Napi::Number::New(env, e.code));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char* name = strerrorname_np(e.code);
    if (name != nullptr) error.Set("code", Napi::String::New(env, name));
#endif
    error.Set("syscall", Napi::String::New(env, e.syscall));
  } else {
    error.Set("code", Napi::String::New(env, "ERR_QUIC_RELAY_INVALID"));
  }
  return error;
}

inline bool throwType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

// Reads an integer in [min, max] from `value`; throws a TypeError naming `what` otherwise.
inline bool readInt(Napi::Env env, const Napi::Value& value, const char* what, double min, double max, double* out) {
  if (!value.IsNumber()) return throwType(env, std::string(what) + " must be a number");
  double v = value.As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || v != static_cast<double>(static_cast<int64_t>(v))) {
    return throwType(env, std::string(what) + " must be an integer in [" + std::to_string(static_cast<int64_t>(min)) +
                              ", " + std::to_string(static_cast<int64_t>(max)) + "]");
  }
  *out = v;
  return true;
}

// Reads info[index] as a boolean when it is given (not undefined); throws a TypeError naming `what` otherwise.
inline bool readOptionalBool(Napi::Env env, const Napi::CallbackInfo& info, size_t index, const char* what, bool* out) {
  if (info.Length() <= index || info[index].IsUndefined()) return true;
  if (!info[index].IsBoolean()) return throwType(env, std::string(what) + " must be a boolean");
  *out = info[index].As<Napi::Boolean>().Value();
  return true;
}

inline bool readString(Napi::Env env, const Napi::Value& value, const char* what, std::string* out) {
  if (!value.IsString()) return throwType(env, std::string(what) + " must be a string");
  *out = value.As<Napi::String>().Utf8Value();
  return true;
}

}  // namespace qr
