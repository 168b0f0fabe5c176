// Traces: the recent ones (filter by service and minimum duration) and one trace as a
// waterfall of its spans, each with its tags (response flags among them).

import { h, api, table, ms } from "./dom.js";

export async function tracesPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const query = { limit: params.get("limit") || "50" };
  if (params.get("service")) query.service = params.get("service");
  if (params.get("min")) query.min_duration_ms = params.get("min");
  const data = await api("/v1/traces", query);
  const service = h("select", { name: "service" }, h("option", { value: "" }, "any service"),
    data.services.map((sv) => h("option", { value: sv, selected: sv === query.service }, sv)));
  const min = h("input", { type: "number", name: "min", min: 0, step: "any", placeholder: "min ms",
                           value: params.get("min") || "" });
  const apply = () => {
    const p = new URLSearchParams();
    if (service.value) p.set("service", service.value);
    if (min.value) p.set("min", min.value);
    location.hash = "#/traces" + (p.toString() ? "?" + p : "");
  };
  const rows = data.traces.map((t) => h("tr", { "data-trace": t.trace_id },
    h("td", null, h("a", { href: `#/traces/${t.trace_id}` }, h("code", null, t.trace_id.slice(0, 16)))),
    h("td", null, `${t.root_service} ${t.root_name}`), h("td", { class: "num" }, ms(t.duration_ms)),
    h("td", { class: "num" }, t.span_count), h("td", null, t.services.join(", ")),
    h("td", { class: t.errors ? "state failing" : "" }, t.errors)));
  return [h("h1", null, "Traces"),
    h("div", { class: "filters" }, service, min, h("button", { onclick: apply }, "Filter")),
    data.traces.length
      ? table(["trace", "root", "duration", "spans", "services", "errors"], rows, { id: "traces" })
      : h("p", { class: "muted" }, "No traces match (sampling is 1% by default: " +
          "meshConfig.defaultConfig.tracing.sampling or a Telemetry resource raises it).")];
}

function depths(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const parent = new Map(spans.map((s) => [s.span_id, ids.has(s.parent_span_id) ? s.parent_span_id : ""]));
  const depth = (id, n = 0) => (parent.get(id) && n < 64 ? depth(parent.get(id), n + 1) : n);
  const children = new Map();
  for (const s of spans) {
    const p = parent.get(s.span_id);
    (children.get(p) || children.set(p, []).get(p)).push(s);
  }
  const ordered = [];
  const walk = (id) => {
    for (const s of (children.get(id) || []).sort((a, b) => a.start_unix_nano - b.start_unix_nano)) {
      ordered.push([s, depth(s.span_id)]);
      walk(s.span_id);
    }
  };
  walk("");
  return ordered;
}

export async function tracePage(id) {
  const t = await api(`/v1/traces/${encodeURIComponent(id)}`);
  const start = Number(t.start_unix_nano);
  const total = Math.max(t.duration_ms, 0.001);
  const rows = depths(t.spans).map(([sp, depth]) => {
    const offset = (Number(sp.start_unix_nano) - start) / 1e6;
    const bar = h("div", { class: "bar", title: `${ms(sp.duration_ms)} at +${ms(offset)}` });
    bar.style.left = `${(offset / total) * 100}%`;
    bar.style.width = `${Math.max(0.3, (sp.duration_ms / total) * 100)}%`;
    const name = h("div", null, "\u00a0".repeat(depth * 3), h("b", null, sp.service), " ",
                   h("span", { class: "muted" }, `${sp.kind} ${sp.name}`));
    const attrs = h("div", { class: "span-attrs", hidden: true },
      table(["tag", "value"], Object.entries(sp.attributes || {}).sort().map(([k, v]) =>
        h("tr", null, h("td", null, h("code", null, k)), h("td", null, String(v))))));
    const row = h("div", { class: "span-row" + (sp.status === "ERROR" ? " error" : ""),
                           "data-span": sp.span_id, "data-service": sp.service,
                           onclick: () => { attrs.hidden = !attrs.hidden; } },
      name, h("div", { class: "bar-track" }, bar), h("div", { class: "num" }, ms(sp.duration_ms)));
    return [row, attrs];
  });
  return [h("h1", null, `Trace ${t.trace_id}`),
    h("p", { class: "muted" }, `${t.root_service} ${t.root_name} · ${ms(t.duration_ms)} · ` +
      `${t.span_count} spans · ${t.services.join(", ")} · click a span for its tags`),
    h("div", { class: "waterfall", id: "waterfall" }, rows),
    h("p", null, h("a", { href: "#/traces" }, "All traces"))];
}
