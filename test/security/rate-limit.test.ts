import { describe, expect, it } from "bun:test";
import { RegRateLimiter } from "../../src/security/rate-limit.ts";

describe("REG rate limiter", () => {
  it("lets a burst through, then the rate", () => {
    const limiter = new RegRateLimiter(10, 5, 1024, 1);
    let allowed = 0;
    for (let i = 0; i < 20; i++) if (limiter.allow("10.0.0.1", 0)) allowed++;
    expect(allowed).toBe(5);
    expect(limiter.allow("10.0.0.1", 50)).toBe(false); // half a token
    expect(limiter.allow("10.0.0.1", 100)).toBe(true); // one token per 100 ms
    expect(limiter.allow("10.0.0.1", 100)).toBe(false);
    // Refills to the burst, never above it.
    let later = 0;
    for (let i = 0; i < 20; i++) if (limiter.allow("10.0.0.1", 100_000)) later++;
    expect(later).toBe(5);
  });

  it("keeps sources apart", () => {
    const limiter = new RegRateLimiter(1, 2, 65_536, 7);
    expect([limiter.allow("10.0.0.1", 0), limiter.allow("10.0.0.1", 0), limiter.allow("10.0.0.1", 0)]).toEqual([true, true, false]);
    expect(limiter.allow("10.0.0.2", 0)).toBe(true);
    // Ports do not matter: the source is the address.
    expect(limiter.allow("::ffff:10.0.0.1", 0)).toBe(false);
  });

  it("keeps the same memory whatever number of sources it sees", () => {
    const limiter = new RegRateLimiter(50, 100, 4096);
    const before = limiter.memoryBytes;
    for (let i = 0; i < 200_000; i++) limiter.allow(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, i);
    expect(limiter.memoryBytes).toBe(before);
    expect(limiter.slots).toBe(4096);
    expect(before).toBe(4096 * 16);
  });

  it("rounds the table up to a power of two and checks its arguments", () => {
    expect(new RegRateLimiter(1, 1, 1000).slots).toBe(1024);
    expect(() => new RegRateLimiter(0, 1)).toThrow(RangeError);
    expect(() => new RegRateLimiter(1, 0)).toThrow(RangeError);
  });

  it("treats an IPv6 /64 as one source", () => {
    const limiter = new RegRateLimiter(1, 1, 1024, 3);
    expect(limiter.allow("2001:db8:1:2::1", 0)).toBe(true);
    expect(limiter.allow("2001:db8:1:2::2", 0)).toBe(false);
    expect(limiter.allow("2001:db8:1:3::1", 0)).toBe(true);
  });
});
