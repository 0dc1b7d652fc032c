/** A 32-bit finaliser (every input bit reaches every output bit), unsigned: the last step of the typed-array indexes' hashes. */
export function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
