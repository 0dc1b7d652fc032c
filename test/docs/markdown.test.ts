/** The marker parser and the output matcher the docs test relies on: each refuses what it should. */
import { describe, expect, it } from "bun:test";
import { lineMatches, missingLine, parseBlocks, runBlocks, unmarkedShellBlocks } from "./markdown.ts";

const DOC = [
  "# t",
  "<!-- ci: run id=one needs=curl,jq -->",
  "```sh",
  "echo one",
  "```",
  "<!-- ci: output -->",
  "```",
  "one",
  "```",
  "<!-- ci: skip needs a VM -->",
  "```sh",
  "ssh vm",
  "```",
  "```sh",
  "unmarked",
  "```",
  "```toml",
  "port = 1",
  "```",
].join("\n");

describe("parseBlocks", () => {
  it("reads markers, ids, needs, output blocks, and finds unmarked shell blocks only", () => {
    const blocks = parseBlocks(DOC);
    expect(blocks.map((b) => b.marker?.kind)).toEqual(["run", "output", "skip", undefined, undefined]);
    expect(runBlocks(blocks)).toEqual([{ line: 3, text: "echo one", id: "one", needs: ["curl", "jq"], expected: ["one"] }]);
    expect(unmarkedShellBlocks(blocks).map((b) => b.line)).toEqual([14]);
  });

  it("refuses a skip without a reason, a marker with no block after it, an output with no run before it", () => {
    expect(() => parseBlocks("<!-- ci: skip -->\n```sh\nx\n```")).toThrow("needs a reason");
    expect(() => parseBlocks("<!-- ci: run -->\ntext\n```sh\nx\n```")).toThrow("must be followed by a fenced block");
    expect(() => runBlocks(parseBlocks("<!-- ci: output -->\n```\nx\n```"))).toThrow("must follow a ci: run block");
    expect(() => parseBlocks("<!-- ci: run when=always -->\n```sh\nx\n```")).toThrow("unknown words");
  });
});

describe("output matching", () => {
  it("text lines: exact, with … for any text", () => {
    expect(lineMatches("healthy: http://x/healthz answered 200 ok", "healthy: http://x/healthz answered 200 ok")).toBe(true);
    expect(lineMatches("healthy: http://x/healthz answered 200 ok", "unhealthy: http://x/healthz answered 503 unavailable")).toBe(false);
    expect(lineMatches('q{kind="native"…} 1', 'q{kind="native",workers="2"} 1')).toBe(true);
    expect(lineMatches('q{kind="native"…} 1', 'q{kind="ts"} 1')).toBe(false);
  });

  it("JSON lines: the expected keys with their values, in any order, more keys allowed; … any value", () => {
    const want = '{"time":"…","msg":"restored","restored":1,"saved_s_ago":…}';
    expect(lineMatches(want, '{"restored":1,"time":"2026-01-01T00:00:00Z","msg":"restored","saved_s_ago":3,"extra":true}')).toBe(true);
    expect(lineMatches(want, '{"time":"t","msg":"restored","restored":0,"saved_s_ago":0}')).toBe(false);
    expect(lineMatches(want, '{"time":"t","msg":"restored","restored":1}')).toBe(false);
    expect(lineMatches(want, "time=t msg=restored restored=1")).toBe(false);
  });

  it("lines in order, others between them allowed", () => {
    expect(missingLine(["a", "c"], ["a", "b", "c"])).toBeUndefined();
    expect(missingLine(["c", "a"], ["a", "b", "c"])).toBe("a");
    expect(missingLine(["d"], ["a"])).toBe("d");
  });
});
