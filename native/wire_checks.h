// Cheap tests of a datagram's first bytes, made before anything else looks at it. Each mirrors
// its definition in src/protocol/ (named on each function) and must say the same.
#pragma once

#include <cstdint>

namespace qr {

// isReg in src/protocol/reg.ts: starts with "REG:".
inline bool isReg(const uint8_t* data, uint32_t length) {
  return length >= 4 && data[0] == 'R' && data[1] == 'E' && data[2] == 'G' && data[3] == ':';
}

// mayBeRelayLine in src/protocol/replies.ts: 4..32 bytes (RELAY_LINE_MAX), last byte '\n', first
// byte 'A', 'E' or 'R' -- possibly ACK/ERR/RETRY from a relay. The length test comes first: a
// datagram over 32 bytes costs one comparison.
inline bool mayBeRelayLine(const uint8_t* data, uint32_t length) {
  if (length < 4 || length > 32 || data[length - 1] != '\n') return false;
  return data[0] == 'A' || data[0] == 'E' || data[0] == 'R';
}

// What a routed datagram needs: the control plane (REG or possible relay line), or forwarding;
// the same test as the TS plane's receive() in src/dataplane/socket-plane.ts.
inline bool forControlPlane(const uint8_t* data, uint32_t length) {
  return isReg(data, length) || mayBeRelayLine(data, length);
}

// isLongHeader in src/protocol/quic.ts: a QUIC long header (first bit set).
inline bool isLongHeader(const uint8_t* data, uint32_t length) { return length > 0 && (data[0] & 0x80) != 0; }

// MAX_CID_LENGTH in src/protocol/quic.ts: the longest connection ID QUIC v1 allows.
constexpr uint32_t kMaxCidLength = 20;

// shortHeaderDcid in src/protocol/quic.ts is defined: a short header (first bit clear) long
// enough to carry a destination connection ID of `cidLength` (> 0) bytes at [1, 1 + cidLength).
inline bool hasShortHeaderDcid(const uint8_t* data, uint32_t length, uint32_t cidLength) {
  return cidLength > 0 && length >= 1 + cidLength && (data[0] & 0x80) == 0;
}

}  // namespace qr
