/**
 * Keys packed into bytes for the typed-array indexes (session ids: compact-id.ts; QUIC connection
 * IDs: cid-key.ts): how a form of key packs, and the hash and comparison every such index uses.
 */
import { mix32 } from "./mix32.ts";

/** A key that does not pack: an index keeps it as a string. */
export const NO_KEY = -1;

/** How one kind of key packs: into `bytes` bytes at most and a code (0..0xfd) that tells its forms apart. */
export interface KeyCodec {
  readonly bytes: number;
  /** The code `key` packs with, or NO_KEY. */
  code(key: string): number;
  /** Bytes of a key packed with `code`. */
  length(code: number): number;
  /** Writes `key` (of `code`) at `at`. */
  write(key: string, code: number, out: Uint8Array, at: number): void;
  /** The key stored at `at` with `code`, as a string again. */
  read(bytes: Uint8Array, at: number, code: number): string;
}

/** A hash of the `n` bytes at `at` packed with `code`, keyed by `seed` (a random one per index: keys are chosen by clients). */
export function hashPacked(seed: number, bytes: Uint8Array, at: number, code: number, n: number): number {
  let h = seed ^ Math.imul(code, 0x9e3779b1);
  for (let k = 0; k < n; k++) h = Math.imul(h ^ bytes[at + k]!, 0x01000193);
  return mix32(h);
}

/** Whether the `n` bytes at `at` with `code` are the `n` at `wantAt` with `wantCode`. */
export function samePacked(bytes: Uint8Array, at: number, code: number, want: Uint8Array, wantAt: number, wantCode: number, n: number): boolean {
  if (code !== wantCode) return false;
  for (let k = 0; k < n; k++) if (bytes[at + k] !== want[wantAt + k]) return false;
  return true;
}
