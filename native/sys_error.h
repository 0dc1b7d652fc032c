// A failed system call: errno and the call's name, turned into a JS error by the binding.
#pragma once

#include <string>

namespace qr {

struct SysError {
  int code = 0;             // errno, or 0 for a validation failure described by `message`
  std::string syscall;      // e.g. "bind"
  std::string message;

  static SysError fromErrno(int code, const char* syscall);
  static SysError invalid(const std::string& message);
};

}  // namespace qr
