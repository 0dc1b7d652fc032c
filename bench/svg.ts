/** A dependency-free SVG chart: delivered kpps and CPU ns/packet per relay, one group per scenario. */
import type { Row } from "./summary.ts";

const COLORS: Record<string, string> = {
  naive: "#9e9e9e", ideal: "#424242", ts: "#1e88e5", native: "#e53935", binary: "#8e24aa",
};

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v) ?? v;
}

interface Panel {
  title: string;
  value: (r: Row) => number | undefined;
}

function panel(p: Panel, rows: Row[], groups: string[], relays: string[], x0: number, y0: number, w: number, h: number): string {
  const values = rows.filter((r) => groups.includes(r.scenario) && relays.includes(r.relay)).map(p.value).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const max = niceMax(Math.max(0, ...values));
  const groupW = w / groups.length, barW = Math.min(18, (groupW - 12) / relays.length);
  const out: string[] = [`<text x="${x0}" y="${y0 - 8}" font-size="13" font-weight="bold">${esc(p.title)}</text>`];
  for (let i = 0; i <= 4; i++) {
    const y = y0 + h - (h * i) / 4;
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + w}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${y + 4}" font-size="10" text-anchor="end">${+((max * i) / 4).toFixed(1)}</text>`);
  }
  groups.forEach((g, gi) => {
    const gx = x0 + gi * groupW + (groupW - barW * relays.length) / 2;
    relays.forEach((relay, ri) => {
      const v = p.value(rows.find((r) => r.scenario === g && r.relay === relay) ?? ({} as Row));
      if (v === undefined || !Number.isFinite(v)) return;
      const bh = (h * v) / max;
      out.push(`<rect x="${(gx + ri * barW).toFixed(1)}" y="${(y0 + h - bh).toFixed(1)}" width="${(barW - 1).toFixed(1)}" ` +
        `height="${bh.toFixed(1)}" fill="${COLORS[relay] ?? "#000"}"><title>${esc(`${relay} ${g}: ${v.toFixed(1)}`)}</title></rect>`);
    });
    const label = g.replace(/^(flow|gso)-/, "").split("-");
    label.forEach((part, li) => out.push(
      `<text x="${(x0 + gi * groupW + groupW / 2).toFixed(1)}" y="${y0 + h + 14 + li * 11}" font-size="10" text-anchor="middle">${esc(part)}</text>`,
    ));
  });
  return out.join("\n");
}

export function chartSvg(rows: Row[], relays: string[], subtitle: string): string {
  const flows = [...new Set(rows.filter((r) => r.scenario.startsWith("flow")).map((r) => r.scenario))];
  const bulk = [...new Set(rows.filter((r) => r.scenario.startsWith("gso")).map((r) => r.scenario))];
  const w = Math.max(640, flows.length * (relays.length * 18 + 16)), left = 70, panelH = 200, gap = 75;
  const panels: string[] = [];
  let y = 80;
  const add = (p: Panel, groups: string[], width: number) => {
    if (groups.length === 0) return;
    panels.push(panel(p, rows, groups, relays, left, y, width, panelH));
    y += panelH + gap;
  };
  add({ title: "Delivered kpps, flows (median)", value: (r) => (r.deliveredPps === undefined ? undefined : r.deliveredPps / 1000) }, flows, w);
  add({ title: "Relay CPU ns per forwarded datagram, flows (median)", value: (r) => r.cpuNsPerPacket }, flows, w);
  const bw = Math.min(w, 2 * (relays.length * 18 + 40));
  add({ title: "GSO bulk: delivered MB/s", value: (r) => (r.deliveredBps === undefined ? undefined : r.deliveredBps / 1e6) }, bulk, bw);
  const legend = relays.map((r, i) =>
    `<rect x="${left + i * 120}" y="34" width="12" height="12" fill="${COLORS[r] ?? "#000"}"/>` +
    `<text x="${left + i * 120 + 16}" y="44" font-size="11">${esc(r)}</text>`).join("\n");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w + left + 20}" height="${y - gap + 50}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">quic-relay bench: ${esc(subtitle)}</text>`,
    legend,
    ...panels,
    `</svg>`,
  ].join("\n");
}
