// Line charts of the golden signals over time (SVG, no library).

import { h, s, rps, pct, ms } from "./dom.js";

const W = 340, H = 130, PAD_L = 44, PAD_B = 18, PAD_T = 6, PAD_R = 8;

function lineChart(title, points, series, fmt) {
  const values = points.flatMap((p) => series.map((x) => p[x.key]))
    .filter((v) => v !== null && v !== undefined);
  const max = Math.max(...values, 0) || 1;
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const X = (t) => PAD_L + ((t - t0) / Math.max(1e-9, t1 - t0)) * (W - PAD_L - PAD_R);
  const Y = (v) => H - PAD_B - (v / max) * (H - PAD_B - PAD_T);
  const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-points": points.length },
    s("line", { x1: PAD_L, y1: H - PAD_B, x2: W - PAD_R, y2: H - PAD_B, stroke: "#ccc" }),
    s("line", { x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B, stroke: "#ccc" }),
    s("text", { x: PAD_L - 4, y: PAD_T + 8, "text-anchor": "end" }, fmt(max)),
    s("text", { x: PAD_L - 4, y: H - PAD_B, "text-anchor": "end" }, fmt(0)),
    points.length ? [
      s("text", { x: PAD_L, y: H - 4 }, new Date(t0 * 1000).toLocaleTimeString()),
      s("text", { x: W - PAD_R, y: H - 4, "text-anchor": "end" }, new Date(t1 * 1000).toLocaleTimeString()),
    ] : s("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
  for (const x of series) {
    let d = "";
    for (const p of points) {
      const v = p[x.key];
      if (v === null || v === undefined) continue;
      d += (d ? " L" : "M") + X(p.t).toFixed(1) + "," + Y(v).toFixed(1);
    }
    if (d) svg.append(s("path", { d, fill: "none", stroke: x.color, "stroke-width": 1.6 }));
  }
  return h("div", { class: "chart", "data-chart": title },
    h("h3", null, title),
    svg,
    h("div", { class: "legend" }, series.map((x) => h("span", null,
      s("svg", { width: 16, height: 8 }, s("line", { x1: 0, y1: 4, x2: 14, y2: 4,
                                                      stroke: x.color, "stroke-width": 2 })),
      " ", x.label))));
}

export function goldenSignals(label, chart) {
  const points = chart.points || [];
  return h("div", null,
    h("h2", null, `${label} `, h("span", { class: "muted" },
      chart.source === "prometheus" ? "(Prometheus)" : "(proxies' counters)")),
    chart.note ? h("p", { class: "note" }, chart.note) : null,
    h("div", { class: "charts" },
      lineChart("Requests per second", points, [{ key: "rps", label: "rps", color: "#2f6fd0" }], rps),
      lineChart("Error rate", points, [{ key: "error_rate", label: "5xx + no response", color: "#d93a3a" }], pct),
      lineChart("Latency", points, [
        { key: "p50_ms", label: "p50", color: "#3f9f5f" },
        { key: "p90_ms", label: "p90", color: "#e0a100" },
        { key: "p99_ms", label: "p99", color: "#d93a3a" }], ms)));
}
