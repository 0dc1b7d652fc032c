/**
 * Just enough of QUIC's invariant header layout (RFC 8999) to read connection IDs in clear.
 * Long header: 0b1xxxxxxx, version (4), DCID len (1), DCID, SCID len (1), SCID.
 * Short header: 0b0xxxxxxx, DCID of a length only the endpoints know.
 */

/** Longest connection ID QUIC v1 allows; the relay ignores longer ones. */
export const MAX_CID_LENGTH = 20;

export interface LongHeaderIds {
  dcid: string;
  scid: string;
}

export function isLongHeader(data: Uint8Array): boolean {
  return data.length > 0 && (data[0]! & 0x80) !== 0;
}

/** Connection IDs of a long-header packet as hex, or undefined when malformed. Never throws. */
export function readLongHeaderIds(data: Uint8Array): LongHeaderIds | undefined {
  if (data.length < 7 || !isLongHeader(data)) return undefined;
  const dcidLength = data[5]!;
  if (dcidLength > MAX_CID_LENGTH) return undefined;
  const scidLengthAt = 6 + dcidLength;
  if (scidLengthAt >= data.length) return undefined;
  const scidLength = data[scidLengthAt]!;
  if (scidLength > MAX_CID_LENGTH || scidLengthAt + 1 + scidLength > data.length) return undefined;
  return {
    dcid: toHex(data, 6, dcidLength),
    scid: toHex(data, scidLengthAt + 1, scidLength),
  };
}

/** The first `length` bytes after a short header's first byte, as hex, or undefined. */
export function shortHeaderDcid(data: Uint8Array, length: number): string | undefined {
  if (length <= 0 || data.length < 1 + length || isLongHeader(data)) return undefined;
  return toHex(data, 1, length);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function toHex(data: Uint8Array, start: number, length: number): string {
  let s = "";
  for (let i = start; i < start + length; i++) s += HEX[data[i]!];
  return s;
}
