// The bridge frames' tag: GMAC (AES-128-GCM over no plaintext, the frame as additional data), from
// OpenSSL's libcrypto, which uses AES-NI and carry-less multiplication where the CPU has them.
// One per thread: the cipher context is reused frame after frame and re-keyed only when the key changes.
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
  BridgeSealer();
  ~BridgeSealer();
  BridgeSealer(const BridgeSealer&) = delete;
  BridgeSealer& operator=(const BridgeSealer&) = delete;

  // The tag over `a` then `b` (either may be empty) under `key`; `iv10` is the frame's epoch and
  // counter (10 bytes). False only if libcrypto failed.
  bool seal(const BridgeKey& key, const uint8_t* iv10, const uint8_t* a, uint32_t aLength, const uint8_t* b,
            uint32_t bLength, uint8_t tag[kBridgeTag]);
  // Whether `tag` is the tag of `body` under `key` (constant time).
  bool verify(const BridgeKey& key, const uint8_t* iv10, const uint8_t* body, uint32_t length, const uint8_t* tag);

 private:
  EVP_CIPHER_CTX* ctx_;
  uint8_t keyed_[16] = {};
  bool hasKey_ = false;
};

}  // namespace qr
