import { OpenIndex } from "../collections/open-index.ts";

/**
 * The TS plane's routes by source address and port (RouteTable.find): route slots in an OpenIndex
 * (4 bytes an entry, split 64 ways so a growth step rehashes a 64th of the routes; a single JS Map
 * of a million entries stops the thread for ~190 ms). It keeps no keys: the table compares them.
 */
export class SourceIndex extends OpenIndex {
  /** Per index: sources a peer picks cannot be chosen to collide. */
  private readonly seed = (Math.random() * 0x1_0000_0000) | 0;

  /** Every character and the port count: a hash of part of the address would let a peer with many addresses collide. */
  hashOf(address: string, port: number): number {
    let h = this.seed ^ port;
    for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x0100_0193);
    // MurmurHash3's finalizer: the shard takes the top bits, the entry the bottom ones.
    h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
    // Signed, as the route table keeps it in an Int32Array and compares it there.
    return h ^ (h >>> 16);
  }
}
