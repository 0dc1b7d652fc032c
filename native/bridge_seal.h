// The bridge frames' tag: GMAC (AES-128-GCM over no plaintext, the frame as additional data), from
// OpenSSL's libcrypto, which uses AES-NI and carry-less multiplication where the CPU has them.
// One per thread: the cipher context is reused frame after frame and re-keyed only when the key changes.
// Made on the first frame: a relay outside a fleet never initialises libcrypto (about 2 MB resident).
#pragma once

#include <cstdint>

#include "bridge_frame.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace qr {

struct BridgeKey {
  uint8_t id = 0;
  uint8_t key[16] = {};
};

class BridgeSealer {
 public:
  BridgeSealer() = default;
  ~BridgeSealer();
  BridgeSealer(const BridgeSealer&) = delete;
  BridgeSealer& operator=(const BridgeSealer&) = delete;

  // The tag over `a` then `b` (either may be empty) under `key`; `iv10` is the frame's epoch and
  // counter (10 bytes). False only if libcrypto failed.
  bool seal(const BridgeKey& key, const uint8_t* iv10, const uint8_t* a, uint32_t aLength, const uint8_t* b,
            uint32_t bLength, uint8_t tag[kBridgeTag]);
  // Whether `tag` is the tag of `body` under `key` (constant time).
  bool verify(const BridgeKey& key, const uint8_t* iv10, const uint8_t* body, uint32_t length, const uint8_t* tag);

  // Initialises libcrypto's AES-GCM once per process, on the calling thread (the JS thread, when a
  // fleet member's keys arrive), so that the first frame on a forwarding thread does not pay for it.
  static void prepare();

 private:
  // The cipher context, made on first use; false if libcrypto failed.
  bool ready();

  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool failed_ = false;
  uint8_t keyed_[16] = {};
  bool hasKey_ = false;
};

}  // namespace qr
