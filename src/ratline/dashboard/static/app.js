// The dashboard page: a hash router over the graph, services, workloads, config health,
// traces and proxies; the live pages re-read their data every few seconds.

import { h, api, LoginNeeded, table, trafficCells, stateClass, rps, pct, ms } from "./dom.js";
import { renderGraph, renderDetail } from "./graph.js";
import { goldenSignals } from "./charts.js";
import { tracesPage, tracePage } from "./traces.js";

const REFRESH_MS = 5000;
const main = document.getElementById("main");
const windowSelect = document.getElementById("window");
const liveBox = document.getElementById("live");
let timer = null;
let selection = null;
let generation = 0;

function windowParams(extra) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const out = { window: windowSelect.value, ...extra };
  if (params.get("source")) out.source = params.get("source");
  return out;
}

function showSource(data) {
  const el = document.getElementById("source");
  if (!data || !data.source) return;
  el.textContent = data.source === "prometheus" ? "Prometheus"
    : data.window_s === null ? "proxies' counters (first read)" : "proxies' counters";
  el.dataset.source = data.source;
}

function note(data) {
  return data && data.note ? h("p", { class: "note" }, data.note) : null;
}

function link(href, text) {
  return h("a", { href }, text);
}

// ---- pages ---------------------------------------------------------------------------

async function graphPage(first) {
  // A first view draws at once without latencies (Prometheus' dearest query), then
  // reads again with them; the live refreshes read everything.
  const quick = first;
  const data = await api("/v1/graph", windowParams(quick ? { latency: "0" } : {}));
  if (quick) setTimeout(() => render(false), 0);
  showSource(data);
  const wrap = h("div", { id: "graph-wrap" });
  const detail = h("aside", { id: "detail" });
  const draw = () => {
    wrap.replaceChildren(renderGraph(data, {
      selected: selection && (selection.id || null),
      onSelect: (sel) => {
        const item = sel.edge || sel.group || sel.node;
        selection = { id: item.id };
        detail.replaceChildren(...renderDetail(sel).filter(Boolean));
        draw();
      },
    }));
  };
  draw();
  if (selection) {
    const item = [...data.edges.map((e) => ({ edge: e, id: e.id })),
                  ...data.groups.map((g) => ({ group: g, id: g.id })),
                  ...data.nodes.map((n) => ({ node: n, id: n.id }))]
      .find((x) => x.id === selection.id);
    if (item) detail.replaceChildren(...renderDetail(item).filter(Boolean));
  }
  const empty = data.edges.length ? null : h("p", { class: "muted" },
    "No traffic in this window: send some requests through the mesh.");
  return [h("h1", null, "Service graph"), note(data), empty, h("div", { class: "layout" }, wrap, detail)];
}

async function servicesPage() {
  const data = await api("/v1/services", windowParams());
  showSource(data);
  const rows = data.services.map((sv) => h("tr", { "data-service": sv.hostname },
    h("td", null, sv.external ? sv.name : link(`#/services/${sv.namespace}/${sv.name}`, sv.name)),
    h("td", null, sv.namespace), h("td", null, sv.origin),
    h("td", null, sv.ports.map((p) => `${p.port}/${p.protocol}`).join(", ")),
    h("td", null, sv.workloads.join(", ")), ...trafficCells(sv.inbound)));
  return [h("h1", null, "Services"), note(data),
          table(["name", "namespace", "kind", "ports", "workloads", "rps", "errors", "p99"], rows)];
}

function configTable(config) {
  if (!config.length) return h("p", { class: "muted" }, "No VirtualService, DestinationRule or policy applies.");
  const rows = config.map((c) => h("tr", { "data-config": `${c.kind} ${c.namespace}/${c.name}` },
    h("td", null, c.kind), h("td", null, `${c.namespace}/${c.name}`),
    h("td", null, c.file ? `${c.file}${c.document ? " #" + c.document : ""}` : "applied"),
    h("td", null, c.why),
    h("td", null, c.findings.length ? c.findings.map((f) => h("div", { class: stateClass(f.severity) },
      `${f.code ? f.code + " " : ""}${f.field ? f.field + ": " : ""}${f.message}`)) : "ok")));
  return table(["kind", "name", "file", "applies because it", "findings"], rows);
}

function edgesTable(rows) {
  if (!rows.length) return h("p", { class: "muted" }, "None in this window.");
  return table(["from", "service", "to", "rps", "errors", "p99", "mTLS"],
    rows.map((r) => h("tr", null,
      h("td", null, `${r.source.workload}.${r.source.namespace}`),
      h("td", null, r.destination.service),
      h("td", null, r.destination.workload === "unknown" ? "no workload (fault, no endpoint)"
                                                         : `${r.destination.workload}.${r.destination.namespace}`),
      ...trafficCells(r), h("td", null, r.mtls ? "yes" : "no"))));
}

async function servicePage(ns, name) {
  const data = await api(`/v1/services/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`,
                         windowParams());
  showSource(data);
  const sv = data.service;
  const endpoints = data.endpoints.map((e) => h("tr", { "data-endpoint": e.address },
    h("td", null, e.service_port), h("td", null, e.address),
    h("td", null, e.workload ? link(`#/workloads/${sv.namespace}/${e.workload}`, e.instance) : e.instance),
    h("td", { class: stateClass(e.healthy ? "healthy" : "failing") }, e.healthy ? "healthy" : "unhealthy"),
    h("td", { class: e.ejected_by.length ? "state failing" : "" },
      e.ejected_by.length ? `ejected by ${e.ejected_by.join(", ")}` : "–")));
  return [
    h("h1", null, `Service ${sv.name}.${sv.namespace}`), note(data),
    h("p", { class: "muted" }, `${sv.hostname} · ${sv.origin} · ports `,
      sv.ports.map((p) => `${p.name || p.port} ${p.port}/${p.protocol}`).join(", ")),
    goldenSignals("Inbound", data.charts.inbound),
    h("h2", null, "Endpoints"),
    table(["port", "address", "instance", "health", "outlier detection"], endpoints),
    h("h2", null, "Callers"), edgesTable(data.callers),
    h("h2", null, "Config that applies"), configTable(data.config),
  ];
}

async function workloadsPage() {
  const data = await api("/v1/workloads", windowParams());
  showSource(data);
  const rows = data.workloads.map((w) => h("tr", { "data-workload": `${w.namespace}/${w.name}` },
    h("td", null, link(`#/workloads/${w.namespace}/${w.name}`, w.name)), h("td", null, w.namespace),
    h("td", null, w.labels.version || "–"),
    h("td", { class: stateClass(w.connected < w.instances ? "NOT-CONNECTED" : "connected") },
      `${w.connected}/${w.instances}`),
    h("td", null, w.services.map((x) => x.split(".")[0]).join(", ")), ...trafficCells(w.inbound)));
  return [h("h1", null, "Workloads"), note(data),
          table(["name", "namespace", "version", "proxies connected", "services", "rps in", "errors", "p99"], rows)];
}

function syncCells(types) {
  return ["CDS", "LDS", "EDS", "RDS"].map((t) => {
    const st = types[t] || { state: "NOT SENT" };
    return h("td", { "data-type": t },
      h("span", { class: stateClass(st.nack ? "NACK" : st.state) }, st.nack ? "NACK" : st.state),
      st.nack ? h("div", { class: "nack" }, st.nack) : null);
  });
}

async function workloadPage(ns, name) {
  const data = await api(`/v1/workloads/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`,
                         windowParams());
  showSource(data);
  const w = data.workload;
  const instances = data.instances.map((i) => h("tr", { "data-instance": i.name },
    h("td", null, i.name),
    h("td", { class: stateClass(i.connected ? "connected" : "NOT-CONNECTED") },
      i.connected ? "connected" : "not connected"),
    h("td", null, i.xds || "–"), ...syncCells(i.types),
    h("td", null, i.healthy ? "healthy" : "unhealthy")));
  return [
    h("h1", null, `${w.kind === "gateway" ? "Gateway" : "Workload"} ${w.name}.${w.namespace}`), note(data),
    h("p", { class: "muted" }, Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(" "),
      " · services ", data.services.map((x) => link(`#/services/${x.namespace}/${x.name}`, x.name + " "))),
    h("h2", null, "Proxies (xDS sync per type)"),
    table(["instance", "control plane", "xDS", "CDS", "LDS", "EDS", "RDS", "app"], instances),
    goldenSignals("Inbound", data.charts.inbound),
    goldenSignals("Outbound", data.charts.outbound),
    h("h2", null, "Callers"), edgesTable(data.callers),
    h("h2", null, "Calls"), edgesTable(data.calls),
    h("h2", null, "Config that applies"), configTable(data.config),
  ];
}

async function configPage() {
  const data = await api("/v1/findings");
  const rows = data.findings.map((f) => h("tr", { "data-resource": f.resource || "", "data-field": f.field || "" },
    h("td", { class: stateClass(f.severity) }, f.severity), h("td", null, f.code || "–"),
    h("td", null, f.file ? `${f.file}${f.document ? " #" + f.document : ""}` : "–"),
    h("td", null, f.resource || "–"), h("td", null, h("code", null, f.field || "–")),
    h("td", null, f.message)));
  return [h("h1", null, "Config health"),
    h("p", { class: "muted" }, data.findings.length
      ? `${data.counts.error || 0} errors, ${data.counts.warning || 0} warnings (analyzers IST/RAT, refused files, translation)`
      : "No findings: the config in force passes every analyzer."),
    data.findings.length ? table(["severity", "code", "file", "resource", "field", "message"], rows, { id: "findings" }) : null];
}

async function proxiesPage() {
  const data = await api("/v1/proxies");
  const rows = data.proxies.map((p) => h("tr", { "data-instance": p.instance, "data-sync": p.sync },
    h("td", null, p.workload ? link(`#/workloads/${p.namespace}/${p.workload}`, p.instance) : p.instance),
    h("td", null, p.namespace),
    h("td", { class: stateClass(p.sync) }, p.connected ? p.sync : "NOT CONNECTED"),
    h("td", null, p.xds || "–"), ...syncCells(p.types),
    h("td", null, p.latest_snapshot || "–")));
  return [h("h1", null, "Proxies"),
          table(["proxy", "namespace", "status", "xDS", "CDS", "LDS", "EDS", "RDS", "latest snapshot"], rows, { id: "proxies" })];
}

// ---- routing -------------------------------------------------------------------------

const ROUTES = [
  [/^#\/graph$|^#?\/?$/, "graph", graphPage, true],
  [/^#\/services$/, "services", servicesPage, true],
  [/^#\/services\/([^/]+)\/([^/]+)$/, "services", servicePage, true],
  [/^#\/workloads$/, "workloads", workloadsPage, true],
  [/^#\/workloads\/([^/]+)\/([^/]+)$/, "workloads", workloadPage, true],
  [/^#\/config$/, "config", configPage, true],
  [/^#\/traces$/, "traces", tracesPage, false],
  [/^#\/traces\/([0-9a-fA-F]+)$/, "traces", tracePage, false],
  [/^#\/proxies$/, "proxies", proxiesPage, true],
];

function showLogin(why) {
  document.getElementById("top").hidden = true;
  main.hidden = true;
  document.getElementById("login").hidden = false;
  const text = { expired: "That login link was used already or has expired: paste the admin token, or run `ratline dashboard` again.",
                 refused: "That is not the mesh's admin token." }[why];
  if (text) document.getElementById("login-why").replaceChildren(h("span", { class: "error-text" }, text));
  document.getElementById("token").focus();
}

async function render(first) {
  const hash = location.hash.split("?")[0];
  if (hash.startsWith("#login=")) { showLogin(hash.slice(7)); return; }
  const route = ROUTES.find(([re]) => re.test(hash)) || ROUTES[0];
  const [re, page, fn, live] = route;
  const args = (re.exec(hash) || []).slice(1).map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  const mine = ++generation;
  try {
    const content = await fn(...args, first);
    if (mine !== generation) return;
    main.replaceChildren(...[content].flat().filter(Boolean));
    main.dataset.page = page;
    main.dataset.loadedAt = String(Date.now());
  } catch (err) {
    if (err instanceof LoginNeeded) { showLogin(); return; }
    if (mine === generation) main.replaceChildren(h("p", { class: "error-text" }, String(err.message || err)));
  }
  clearTimeout(timer);
  if (live && liveBox.checked) timer = setTimeout(() => render(false), REFRESH_MS);
  refreshFindingsBadge();
}

async function refreshFindingsBadge() {
  try {
    const data = await api("/v1/findings");
    document.getElementById("findings-count").textContent = data.counts.error ? String(data.counts.error) : "";
  } catch (err) { /* the page shows its own errors */ }
}

window.addEventListener("hashchange", () => { selection = null; render(true); });
windowSelect.addEventListener("change", () => render(true));
liveBox.addEventListener("change", () => render(false));
render(true);
