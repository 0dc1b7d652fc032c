// Relay-to-relay bridge frames, version 3, as src/fleet/bridge-codec.ts defines them (that file's
// header is the format's one description; these constants must say the same). Big-endian:
//   magic "\0qrb" | version | type | key id | sid length | sent-at u48 | epoch u48 | counter u32
//   | session id | payload | tag (16: GMAC under AES-128, IV = bytes [14, 24) then two zero bytes)
// Pure parsing and writing; no keys, no I/O.
#pragma once

#include <cstdint>
#include <cstring>

namespace qr {

constexpr uint32_t kBridgeHeader = 24;
constexpr uint32_t kBridgeTag = 16;
constexpr uint8_t kBridgeVersion = 3;
constexpr uint8_t kBridgeData = 0;
// MAX_SESSION_ID_LENGTH in src/protocol/reg.ts.
constexpr uint32_t kMaxSessionId = 128;
constexpr uint32_t kBridgeIv = 12;
constexpr uint32_t kBridgeIvAt = 14;

// isBridgeDatagram in src/fleet/bridge-codec.ts: starts with the magic "\0qrb".
inline bool isBridgeFrame(const uint8_t* data, uint32_t length) {
  return length >= 4 && data[0] == 0x00 && data[1] == 0x71 && data[2] == 0x72 && data[3] == 0x62;
}

inline uint64_t readU48(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 6; i++) v = (v << 8) | p[i];
  return v;
}

inline uint32_t readU32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) | (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

inline void writeU48(uint8_t* p, uint64_t v) {
  for (int i = 5; i >= 0; i--) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

inline void writeU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// A data frame's fields, pointing into the datagram.
struct BridgeDataFrame {
  uint8_t keyId;
  uint64_t sentAt;
  uint64_t epoch;
  uint32_t counter;
  const uint8_t* sessionId;
  uint32_t sessionIdLength;
  const uint8_t* payload;
  uint32_t payloadLength;
  const uint8_t* iv;   // kBridgeIv - 2 bytes of the frame; the last two IV bytes are zero
  uint32_t body;       // bytes the tag covers (everything before it)
  const uint8_t* tag;
};

// A well-formed version-3 data frame; false for anything else (left to the control plane).
inline bool parseBridgeData(const uint8_t* data, uint32_t length, BridgeDataFrame* out) {
  if (length < kBridgeHeader + kBridgeTag || !isBridgeFrame(data, length)) return false;
  if (data[4] != kBridgeVersion || data[5] != kBridgeData) return false;
  uint32_t sid = data[7];
  if (sid == 0 || sid > kMaxSessionId || kBridgeHeader + sid > length - kBridgeTag) return false;
  out->keyId = data[6];
  out->sentAt = readU48(data + 8);
  out->epoch = readU48(data + 14);
  out->counter = readU32(data + 20);
  out->sessionId = data + kBridgeHeader;
  out->sessionIdLength = sid;
  out->payload = data + kBridgeHeader + sid;
  out->body = length - kBridgeTag;
  out->payloadLength = out->body - kBridgeHeader - sid;
  out->iv = data + kBridgeIvAt;
  out->tag = data + out->body;
  return true;
}

// Writes a data frame's header and session id into `out` (kBridgeHeader + sidLength bytes).
inline uint32_t writeBridgeHeader(uint8_t* out, uint8_t keyId, uint64_t sentAt, uint64_t epoch, uint32_t counter,
                                  const uint8_t* sid, uint32_t sidLength) {
  out[0] = 0x00;
  out[1] = 0x71;
  out[2] = 0x72;
  out[3] = 0x62;
  out[4] = kBridgeVersion;
  out[5] = kBridgeData;
  out[6] = keyId;
  out[7] = static_cast<uint8_t>(sidLength);
  writeU48(out + 8, sentAt);
  writeU48(out + 14, epoch);
  writeU32(out + 20, counter);
  std::memcpy(out + kBridgeHeader, sid, sidLength);
  return kBridgeHeader + sidLength;
}

}  // namespace qr
