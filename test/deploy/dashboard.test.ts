/**
 * deploy/grafana-dashboard.json against the relay's real exposition: every metric a query names
 * must be one a running relay exports (with STUN on and a state file, so the optional families
 * are there), every label a selector matches on must be one that metric carries, and literal
 * label values must occur. Histogram series (_bucket, _sum, _count) count as exported.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS } from "../../src/config/config.ts";
import { RelayService } from "../../src/service/relay-service.ts";
import { planesUnderTest } from "../utils.ts";
import dashboard from "../../deploy/grafana-dashboard.json" with { type: "json" };

/** PromQL functions and aggregation operators (Prometheus 2.x/3.x): anything else before `(` is an error. */
const FUNCTIONS = new Set([
  // aggregations
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
  // functions
  "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month", "day_of_week",
  "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
  "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "double_exponential_smoothing", "holt_winters",
  "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear",
  "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc", "sqrt", "time",
  "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
  "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time", "mad_over_time",
  "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
]);
/** Words that are no metric; those followed by a parenthesised label list are skipped with it. */
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const OTHER_KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"]);

interface Matcher {
  label: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}
interface Selector {
  metric: string;
  matchers: Matcher[];
}

/** The vector selectors of a PromQL expression. Throws on what it cannot check (a selector without a metric name, a bare variable). */
function selectorsOf(expr: string): Selector[] {
  const out: Selector[] = [];
  let i = 0;
  const n = expr.length;
  const skipSpace = () => {
    while (i < n && /\s/.test(expr[i]!)) i++;
  };
  const readString = (): string => {
    const quote = expr[i]!;
    let value = "";
    i++;
    while (i < n && expr[i] !== quote) {
      if (expr[i] === "\\" && quote !== "`") {
        value += expr[i + 1] ?? "";
        i += 2;
      } else value += expr[i++];
    }
    if (i >= n) throw new Error(`unterminated string in ${expr}`);
    i++;
    return value;
  };
  const skipBalanced = (open: string, close: string) => {
    let depth = 0;
    while (i < n) {
      const c = expr[i]!;
      if (c === '"' || c === "'" || c === "`") {
        readString();
        continue;
      }
      i++;
      if (c === open) depth++;
      else if (c === close && --depth === 0) return;
    }
    throw new Error(`unbalanced ${open} in ${expr}`);
  };
  const readMatchers = (): Matcher[] => {
    const matchers: Matcher[] = [];
    i++; // {
    for (;;) {
      skipSpace();
      if (expr[i] === "}") {
        i++;
        return matchers;
      }
      const label = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(expr.slice(i))?.[0];
      if (!label) throw new Error(`bad label matcher at ${i} in ${expr}`);
      i += label.length;
      skipSpace();
      const op = /^(=~|!~|!=|=)/.exec(expr.slice(i))?.[0] as Matcher["op"] | undefined;
      if (!op) throw new Error(`bad matcher operator at ${i} in ${expr}`);
      i += op.length;
      skipSpace();
      if (!`"'\``.includes(expr[i] ?? "")) throw new Error(`matcher value is no string at ${i} in ${expr}`);
      matchers.push({ label, op, value: readString() });
      skipSpace();
      if (expr[i] === ",") i++;
    }
  };

  while (i < n) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "#") {
      while (i < n && expr[i] !== "\n") i++;
    } else if (c === '"' || c === "'" || c === "`") {
      readString();
    } else if (c === "[") {
      skipBalanced("[", "]"); // a range or subquery: durations and $__rate_interval
    } else if (c === "{") {
      throw new Error(`selector without a metric name in ${expr}: not checkable`);
    } else if (c === "$") {
      throw new Error(`variable outside a string or range in ${expr}: not checkable`);
    } else if (/[0-9.]/.test(c)) {
      i += /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?[a-zA-Z0-9]*)/.exec(expr.slice(i))?.[0].length || 1;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const word = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))![0];
      i += word.length;
      skipSpace();
      const lower = word.toLowerCase();
      if (LABEL_LIST_KEYWORDS.has(lower)) {
        if (expr[i] === "(") skipBalanced("(", ")");
      } else if (OTHER_KEYWORDS.has(lower)) {
        // an operator, a modifier, or a number
      } else if (expr[i] === "(" || (FUNCTIONS.has(word) && /^(by|without)\b/i.test(expr.slice(i)))) {
        // a call, or an aggregation with its grouping first: `sum by (le) (...)`
        if (!FUNCTIONS.has(word)) throw new Error(`unknown PromQL function ${word} in ${expr}`);
      } else {
        out.push({ metric: word, matchers: expr[i] === "{" ? readMatchers() : [] });
      }
    } else {
      i++;
    }
  }
  return out;
}

/** Exported series: sample names with the label values seen, plus every name a TYPE line promises. */
interface Exported {
  names: Set<string>;
  labels: Map<string, Map<string, Set<string>>>;
}

function parseExposition(text: string): Exported {
  const names = new Set<string>();
  const labels = new Map<string, Map<string, Set<string>>>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name, kind] = type;
      if (kind === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name! + suffix);
      else if (kind === "summary") for (const suffix of ["", "_sum", "_count"]) names.add(name! + suffix);
      else names.add(name!);
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    const name = m[1]!;
    names.add(name);
    const byLabel = labels.get(name) ?? new Map<string, Set<string>>();
    labels.set(name, byLabel);
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      const values = byLabel.get(pair[1]!) ?? new Set<string>();
      values.add(pair[2]!.replace(/\\(.)/g, (_, ch: string) => (ch === "n" ? "\n" : ch)));
      byLabel.set(pair[1]!, values);
    }
  }
  return { names, labels };
}

/** Labels Prometheus adds at scrape time: in every query, never in the exposition. */
const TARGET_LABELS = new Set(["job", "instance"]);

/** What is wrong with `expr` against `exported`: unknown metrics, labels it never carries, literal values that never occur. */
function problemsOf(expr: string, exported: Exported): string[] {
  let selectors: Selector[];
  try {
    selectors = selectorsOf(expr);
  } catch (error) {
    return [(error as Error).message];
  }
  if (selectors.length === 0) return [`no metric in ${expr}`];
  const problems: string[] = [];
  for (const { metric, matchers } of selectors) {
    if (!exported.names.has(metric)) {
      problems.push(`${metric} is not exported (in ${expr})`);
      continue;
    }
    const byLabel = exported.labels.get(metric);
    if (!byLabel) continue; // a family without samples right now: nothing to check its labels against
    for (const { label, op, value } of matchers) {
      if (TARGET_LABELS.has(label) || label === "__name__") continue;
      const values = byLabel.get(label);
      if (!values) {
        problems.push(`${metric} has no label ${label} (in ${expr})`);
        continue;
      }
      if (value.includes("$")) continue; // a dashboard variable
      const known = [...values];
      if (op === "=" && !values.has(value)) problems.push(`${metric}{${label}="${value}"} never occurs (values: ${known.join(", ")})`);
      if (op === "=~" && !known.some((v) => new RegExp(`^(?:${value})$`).test(v))) {
        problems.push(`${metric}{${label}=~"${value}"} matches no value (values: ${known.join(", ")})`);
      }
    }
  }
  return problems;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string; datasource?: { type: string; uid: string } }[];
  panels?: Panel[];
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every PromQL expression the dashboard runs: panel targets, and the selectors of label_values() variables. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const panel of allPanels(dashboard.panels as Panel[])) {
    for (const target of panel.targets ?? []) out.push({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr });
  }
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === "string" ? variable.query : variable.query.query;
    const labelValues = /^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$/.exec(query);
    out.push({ where: `variable ${variable.name}`, expr: labelValues ? labelValues[1]! : query });
  }
  return out;
}

describe("the PromQL checker", () => {
  const exported = parseExposition(
    [
      "# TYPE a_total counter",
      'a_total{reason="x"} 1',
      'a_total{reason="y-z"} 1',
      "# TYPE lag_seconds histogram",
      'lag_seconds_bucket{le="+Inf"} 0',
      "lag_seconds_sum 0",
      "lag_seconds_count 0",
    ].join("\n"),
  );

  it("accepts exported names, histogram series, functions, grouping labels, ranges and variables", () => {
    const ok = [
      'sum by (reason) (rate(a_total{job=~"$job",reason="x"}[$__rate_interval]))',
      'histogram_quantile(0.99, sum by (le, instance) (rate(lag_seconds_bucket[5m]))) / on (instance) group_left sum(rate(lag_seconds_count[1h:1m] offset 5m))',
      'sum(increase(a_total{reason=~"y-.*|x"}[$__range])) > bool 1e3 and time() - 5',
    ];
    for (const expr of ok) expect(problemsOf(expr, exported)).toEqual([]);
  });

  it("reports unknown metrics, the bare histogram name, unknown labels and values, unknown functions and unnamed selectors", () => {
    expect(problemsOf("rate(a_totl[5m])", exported)).toEqual(["a_totl is not exported (in rate(a_totl[5m]))"]);
    expect(problemsOf("histogram_quantile(0.5, rate(lag_seconds[5m]))", exported)).toHaveLength(1);
    expect(problemsOf('a_total{kind="x"}', exported)[0]).toContain("has no label kind");
    expect(problemsOf('a_total{reason="early-overflow"}', exported)[0]).toContain("never occurs");
    expect(problemsOf('a_total{reason=~"nope|nada"}', exported)[0]).toContain("matches no value");
    expect(problemsOf("rte(a_total[5m])", exported)[0]).toContain("unknown PromQL function rte");
    expect(problemsOf('sum({__name__=~"a_.*"})', exported)[0]).toContain("without a metric name");
    expect(problemsOf("vector(1)", exported)[0]).toContain("no metric");
  });
});

describe("deploy/grafana-dashboard.json", () => {
  it("is an importable dashboard: schema 39, a DS_PROMETHEUS input used by every panel and query, unique ids, laid out", () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" }));
    expect(dashboard.uid).toBeTruthy();
    const panels = allPanels(dashboard.panels as Panel[]);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const panel of panels) {
      expect(panel.gridPos).toBeDefined();
      if (panel.type === "row") continue;
      expect(panel.datasource).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(refIds.length).toBeGreaterThan(0);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const target of panel.targets!) expect(target.datasource).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
    }
  });

  describe.each(planesUnderTest())("queries against a running relay (%s plane)", (plane) => {
    let service: RelayService;
    let dir: string;
    let exported: Exported;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "quic-relay-dashboard-"));
      service = new RelayService({
        ...DEFAULTS,
        host: "127.0.0.1",
        port: 0,
        dataplane: plane,
        workers: 1,
        logLevel: "error",
        metricsListen: undefined,
        stun: true,
        stateFile: join(dir, "sessions.db"),
      });
      await service.start();
      exported = parseExposition(service.metricsText());
    });
    afterAll(async () => {
      await service?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("names only metrics, labels and label values the relay exports", () => {
      const problems = expressions().flatMap(({ where, expr }) => problemsOf(expr, exported).map((p) => `${where}: ${p}`));
      // The event-loop families come from the EventLoopLagMonitor RelayService starts with the relay.
      expect(problems).toEqual([]);
    });

    it("covers the families an operator needs", () => {
      const named = new Set(expressions().flatMap(({ expr }) => selectorsOf(expr).map((s) => s.metric)));
      for (const metric of [
        "quic_relay_forwarded_datagrams_total",
        "quic_relay_control_forwarded_datagrams_total",
        "quic_relay_sessions_active",
        "quic_relay_refusals_total",
        "quic_relay_drops_total",
        "quic_relay_stun_requests_total",
        "quic_relay_event_loop_lag_seconds_bucket",
        "quic_relay_event_loop_lag_max_seconds",
        "quic_relay_socket_buffer_bytes",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
      ]) {
        expect(named).toContain(metric);
      }
    });
  });
});
