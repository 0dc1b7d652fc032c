/** Prometheus text exposition format, version 0.0.4. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type Labels = Record<string, string>;
export type MetricType = "counter" | "gauge";

/** Builds one exposition document: each family once, with HELP and TYPE before its samples. */
export class ExpositionWriter {
  private readonly lines: string[] = [];

  /** A family with one unlabelled sample. */
  single(name: string, type: MetricType, help: string, value: number): this {
    return this.family(name, type, help, [[{}, value]]);
  }

  family(name: string, type: MetricType, help: string, samples: Iterable<[Labels, number]>): this {
    this.lines.push(`# HELP ${name} ${help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`);
    this.lines.push(`# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  toString(): string {
    return this.lines.join("\n") + "\n";
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
