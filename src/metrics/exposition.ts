/** Prometheus text exposition format, version 0.0.4. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge";

/** A histogram as counted: `counts` per bucket (not cumulative), one more than `bounds` (the last is above every bound). */
export interface HistogramSnapshot {
  bounds: readonly number[];
  counts: readonly number[];
  sum: number;
  count: number;
}

/** Builds one exposition document: each family once, with HELP and TYPE before its samples. */
export class ExpositionWriter {
  private readonly lines: string[] = [];

  /** A family with one unlabelled sample. */
  single(name: string, type: MetricType, help: string, value: number): this {
    return this.family(name, type, help, [[{}, value]]);
  }

  family(name: string, type: MetricType, help: string, samples: Iterable<[Labels, number]>): this {
    this.header(name, type, help);
    for (const [labels, value] of samples) this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  /** A histogram family without labels: cumulative `_bucket{le}` samples ending at `+Inf`, then `_sum` and `_count`. */
  histogram(name: string, help: string, h: HistogramSnapshot): this {
    this.header(name, "histogram", help);
    let cumulative = 0;
    h.bounds.forEach((bound, i) => {
      cumulative += h.counts[i] ?? 0;
      this.lines.push(`${name}_bucket${formatLabels({ le: formatValue(bound) })} ${cumulative}`);
    });
    this.lines.push(`${name}_bucket${formatLabels({ le: "+Inf" })} ${h.count}`);
    this.lines.push(`${name}_sum ${formatValue(h.sum)}`);
    this.lines.push(`${name}_count ${h.count}`);
    return this;
  }

  toString(): string {
    return this.lines.join("\n") + "\n";
  }

  private header(name: string, type: MetricType | "histogram", help: string): void {
    this.lines.push(`# HELP ${name} ${help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`);
    this.lines.push(`# TYPE ${name} ${type}`);
  }
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  const body = entries.map(([k, v]) => `${k}="${v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"')}"`);
  return `{${body.join(",")}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
