/**
 * The command blocks of a markdown document and the markers that say what CI does with them:
 *
 *   <!-- ci: run [id=NAME] [needs=tool1,tool2] -->    the next fenced block runs; NAME for test hooks
 *   <!-- ci: output -->                                the next fenced block: lines the run before it prints
 *   <!-- ci: skip REASON -->                           the next fenced block cannot run in CI, and why
 *
 * Every shell block (```sh, ```bash, ```shell, or no language) must carry one of them.
 */

export interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
  marker: { kind: "run"; id?: string; needs: string[] } | { kind: "skip"; reason: string } | { kind: "output" } | undefined;
}

export interface RunBlock {
  line: number;
  text: string;
  id: string | undefined;
  needs: string[];
  /** The lines the `ci: output` block right after it shows; undefined when it has none. */
  expected: string[] | undefined;
}

const MARKER = /^<!--\s*ci:\s*(run|skip|output)\b(.*?)-->\s*$/;
const SHELL_LANGS = new Set(["", "sh", "bash", "shell"]);

export function parseBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let pending: Block["marker"] | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const m = MARKER.exec(line.trim());
    if (m) {
      const rest = m[2]!.trim();
      if (m[1] === "skip") {
        if (rest === "") throw new Error(`line ${i + 1}: a ci: skip marker needs a reason`);
        pending = { kind: "skip", reason: rest };
      } else if (m[1] === "output") {
        pending = { kind: "output" };
      } else {
        const id = /(?:^|\s)id=(\S+)/.exec(rest)?.[1];
        const needs = /(?:^|\s)needs=(\S+)/.exec(rest)?.[1]?.split(",") ?? [];
        const unknown = rest.replace(/(?:^|\s)(id|needs)=\S+/g, "").trim();
        if (unknown) throw new Error(`line ${i + 1}: unknown words in a ci: run marker: ${unknown}`);
        pending = { kind: "run", id, needs };
      }
      continue;
    }
    const fence = /^(`{3,})\s*([\w-]*)/.exec(line);
    if (!fence) {
      if (pending && line.trim() !== "") throw new Error(`line ${i + 1}: a ci marker must be followed by a fenced block`);
      continue;
    }
    const close = lines.findIndex((l, j) => j > i && l.startsWith(fence[1]!) && l.trim() === fence[1]);
    if (close < 0) throw new Error(`line ${i + 1}: fenced block never closed`);
    blocks.push({ line: i + 1, lang: fence[2]!, text: lines.slice(i + 1, close).join("\n"), marker: pending });
    pending = undefined;
    i = close;
  }
  return blocks;
}

/** Shell blocks without a marker: each is a command nobody checks, so the docs test refuses them. */
export function unmarkedShellBlocks(blocks: Block[]): Block[] {
  return blocks.filter((b) => b.marker === undefined && SHELL_LANGS.has(b.lang));
}

/** The `ci: run` blocks in order, each with the output block that follows it. */
export function runBlocks(blocks: Block[]): RunBlock[] {
  const runs: RunBlock[] = [];
  blocks.forEach((b, i) => {
    if (b.marker?.kind === "output" && blocks[i - 1]?.marker?.kind !== "run") {
      throw new Error(`line ${b.line}: a ci: output block must follow a ci: run block`);
    }
    if (b.marker?.kind !== "run") return;
    const next = blocks[i + 1];
    const expected = next?.marker?.kind === "output" ? next.text.split("\n").filter((l) => l.trim() !== "") : undefined;
    runs.push({ line: b.line, text: b.text, id: b.marker.id, needs: b.marker.needs, expected });
  });
  return runs;
}

/**
 * Whether the actual output shows every expected line, in order (other lines may come between).
 * `…` in an expected line stands for any text. An expected JSON object matches a JSON line that has
 * each of its keys with that value (`…` as a value, bare or in a string, matches any), in any
 * order, with other keys allowed: log consumers read keys, not positions. Returns the first
 * expected line that has no match, or undefined when all match.
 */
export function missingLine(expected: string[], actual: string[]): string | undefined {
  let from = 0;
  for (const want of expected) {
    const at = actual.findIndex((line, j) => j >= from && lineMatches(want.trim(), line.trim()));
    if (at < 0) return want;
    from = at + 1;
  }
  return undefined;
}

export function lineMatches(expected: string, actual: string): boolean {
  if (expected.startsWith("{")) {
    const want = parseExpectedJson(expected);
    let got: unknown;
    try {
      got = JSON.parse(actual);
    } catch {
      return false;
    }
    if (typeof got !== "object" || got === null) return false;
    return Object.entries(want).every(([key, value]) => key in got && valueMatches(value, (got as Record<string, unknown>)[key]));
  }
  return wildcard(expected).test(actual);
}

const ANY = "\u2026";

function parseExpectedJson(text: string): Record<string, unknown> {
  // `"saved_s_ago":…` is not JSON: a bare … becomes the string "…", which matches any value.
  return JSON.parse(text.replace(/:\s*…(?=\s*[,}])/g, `:"${ANY}"`)) as Record<string, unknown>;
}

function valueMatches(want: unknown, got: unknown): boolean {
  if (want === ANY) return true;
  if (typeof want === "string" && want.includes(ANY)) return typeof got === "string" && wildcard(want).test(got);
  return JSON.stringify(want) === JSON.stringify(got);
}

function wildcard(pattern: string): RegExp {
  const parts = pattern.split(ANY).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`, "s");
}
