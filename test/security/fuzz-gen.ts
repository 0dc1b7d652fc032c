import { mintToken } from "../../src/security/token.ts";
import { longHeader, shortHeader } from "../utils.ts";
import { mulberry32 } from "../support/prng.ts";

/** The seeded PRNG with the helpers the fuzzer draws from, so a failing run can be replayed from its seed. */
export function prng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = int(256);
    return out;
  };
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, bytes, pick };
}
export type Rng = ReturnType<typeof prng>;

const enc = (s: string) => new TextEncoder().encode(s);
const MAX_UDP = 65_507;

/** A size skewed towards the edges: 0-4, small, MTU-ish, large, and the UDP maximum. */
function size(r: Rng): number {
  const x = r.next();
  if (x < 0.1) return r.int(5);
  if (x < 0.55) return 5 + r.int(60);
  if (x < 0.85) return 65 + r.int(1436);
  if (x < 0.97) return 1501 + r.int(8000);
  if (x < 0.995) return 9501 + r.int(MAX_UDP - 9501);
  return MAX_UDP;
}

function printable(r: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(0x21 + r.int(94));
  return s;
}

function junk(r: Rng): Uint8Array {
  const d = r.bytes(size(r));
  // Keep junk out of the REG path so each category stays what it says.
  if (d.length >= 4 && d[0] === 0x52) d[0] = 0x53;
  return d;
}

function regVariant(r: Rng): Uint8Array {
  const id = printable(r, r.pick([0, 1, 2, 8, 36, 73, 127, 128, 129, 200, 1000]));
  const end = r.pick(["", "\n", "\r\n", "\n\n", "\r", " ", "\0"]);
  const forms = [
    () => `REG:${id}${end}`,
    () => `REG:${id.slice(0, 10)} ${id.slice(10)}${end}`,
    () => `REG:${id}\x7f${end}`,
    () => `REG:`,
    () => `REG:\r\n`,
    () => `reg:${id}\n`,
    () => `REG ${id}\n`,
    () => `REG:${id}`.padEnd(size(r), "A"),
  ];
  const text = r.pick(forms)();
  if (r.next() < 0.15) {
    const d = enc(`REG:${"x".repeat(r.int(40))}`);
    const out = new Uint8Array(d.length + 1 + r.int(64));
    out.set(d);
    out.set(r.bytes(out.length - d.length), d.length);
    return out;
  }
  return enc(text);
}

/** Token-shaped REGs that must all fail: forged, expired, foreign, or a genuine one damaged. */
function tokenVariant(r: Rng, secret: Uint8Array): Uint8Array {
  const now = Math.floor(Date.now() / 1000);
  const id = printable(r, 1 + r.int(40));
  const genuine = mintToken(secret, id, now + 600);
  const forms: (() => string | Uint8Array)[] = [
    () => mintToken(secret, id, now - 1 - r.int(100_000)),
    () => mintToken("not-the-relay-secret-00", id, now + 600),
    () => `${printable(r, 8)}${genuine.slice(genuine.indexOf(":"))}`,
    () => `${id}:${now + 600}:${printable(r, 43)}`,
    () => `${id}:${now + 600}:${genuine.slice(-43, -1)}`,
    () => `${genuine}x`,
    () => {
      // One byte of the field replaced by a different one.
      const b = enc(genuine);
      const at = r.int(b.length);
      b[at] = (b[at]! + 1 + r.int(255)) & 255;
      return b;
    },
  ];
  const field = r.pick(forms)();
  const body = typeof field === "string" ? enc(field) : field;
  const bytes = new Uint8Array(4 + body.length + 1);
  bytes.set(enc("REG:"));
  bytes.set(body, 4);
  bytes[bytes.length - 1] = 0x0a;
  return bytes;
}

function quicLike(r: Rng): Uint8Array {
  const cid = (n: number) => Array.from(r.bytes(n));
  const forms = [
    () => longHeader(cid(r.int(21)), cid(r.int(21)), 0xc0 | r.int(64)),
    () => shortHeader(cid(8), Array.from(r.bytes(r.int(1200)))),
    () => {
      const d = longHeader(cid(8), cid(8));
      d[5] = 200; // a DCID length past the end
      return d;
    },
    () => new Uint8Array([0x80 | r.int(128), ...r.bytes(r.int(7))]),
  ];
  return r.pick(forms)();
}

/** One fuzz datagram: junk, REG variants, token variants or QUIC-shaped, optionally mutated further. */
export function fuzzDatagram(r: Rng, secret: Uint8Array): Uint8Array {
  const x = r.next();
  if (x < 0.3) return junk(r);
  if (x < 0.55) return regVariant(r);
  if (x < 0.8) return tokenVariant(r, secret);
  return quicLike(r);
}
