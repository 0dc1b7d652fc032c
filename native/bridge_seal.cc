#include "bridge_seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

namespace qr {

bool BridgeSealer::ready() {
  if (ctx_ != nullptr) return true;
  if (failed_) return false;
  ctx_ = EVP_CIPHER_CTX_new();
  if (ctx_ != nullptr && EVP_EncryptInit_ex(ctx_, EVP_aes_128_gcm(), nullptr, nullptr, nullptr) != 1) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = nullptr;
  }
  failed_ = ctx_ == nullptr;
  return !failed_;
}

void BridgeSealer::prepare() {
  static const bool prepared = [] {
    BridgeSealer warm;
    return warm.ready();
  }();
  (void)prepared;
}

BridgeSealer::~BridgeSealer() {
  if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);
}

bool BridgeSealer::seal(const BridgeKey& key, const uint8_t* iv10, const uint8_t* a, uint32_t aLength, const uint8_t* b,
                        uint32_t bLength, uint8_t tag[kBridgeTag]) {
  if (!ready()) return false;
  uint8_t iv[kBridgeIv] = {};
  std::memcpy(iv, iv10, kBridgeIv - 2);
  // Re-keying costs the key schedule and GHASH's key; consecutive frames mostly share a key.
  bool rekey = !hasKey_ || std::memcmp(keyed_, key.key, sizeof keyed_) != 0;
  if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, rekey ? key.key : nullptr, iv) != 1) {
    hasKey_ = false;
    return false;
  }
  if (rekey) {
    std::memcpy(keyed_, key.key, sizeof keyed_);
    hasKey_ = true;
  }
  int out = 0;
  if (aLength > 0 && EVP_EncryptUpdate(ctx_, nullptr, &out, a, static_cast<int>(aLength)) != 1) return false;
  if (bLength > 0 && EVP_EncryptUpdate(ctx_, nullptr, &out, b, static_cast<int>(bLength)) != 1) return false;
  uint8_t none[16];
  if (EVP_EncryptFinal_ex(ctx_, none, &out) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kBridgeTag, tag) == 1;
}

bool BridgeSealer::verify(const BridgeKey& key, const uint8_t* iv10, const uint8_t* body, uint32_t length,
                          const uint8_t* tag) {
  uint8_t expected[kBridgeTag];
  if (!seal(key, iv10, body, length, nullptr, 0, expected)) return false;
  return CRYPTO_memcmp(expected, tag, kBridgeTag) == 0;
}

}  // namespace qr
