// The service graph: a layered layout (entries on the left, callees to the right) of
// blocks, a block being a service with its workloads inside or a lone node (the gateway,
// a caller outside the mesh), and one curve per edge with its rate, error rate and p99.

import { h, s, rps, pct, ms, bytes } from "./dom.js";

const NODE_W = 170, NODE_H = 38, GROUP_PAD = 8, GROUP_HEAD = 24, COL_GAP = 170, ROW_GAP = 22;

function blocksOf(graph) {
  const blocks = new Map();  // id -> {id, group, nodes: []}
  const blockOfNode = new Map();
  for (const g of graph.groups) blocks.set(g.id, { id: g.id, group: g, nodes: [] });
  for (const n of graph.nodes) {
    const bid = n.group && blocks.has(n.group) ? n.group : n.id;
    if (!blocks.has(bid)) blocks.set(bid, { id: bid, group: null, nodes: [] });
    blocks.get(bid).nodes.push(n);
    blockOfNode.set(n.id, bid);
  }
  for (const g of graph.groups) blockOfNode.set(g.id, g.id);
  return { blocks, blockOfNode };
}

function ranks(blocks, links) {
  // Longest path from the entries; back edges (found by DFS) are ignored, so cycles end.
  const out = new Map([...blocks.keys()].map((k) => [k, []]));
  for (const [a, b] of links) if (a !== b) out.get(a).push(b);
  const state = new Map(), back = new Set(), order = [];
  const visit = (v) => {
    state.set(v, 1);
    for (const w of out.get(v)) {
      if (state.get(w) === 1) back.add(v + ">" + w);
      else if (!state.has(w)) visit(w);
    }
    state.set(v, 2);
    order.push(v);
  };
  const incoming = new Set(links.map(([, b]) => b));
  const starts = [...blocks.keys()].sort((a, b) => (incoming.has(a) - incoming.has(b)));
  for (const v of starts) if (!state.has(v)) visit(v);
  const rank = new Map([...blocks.keys()].map((k) => [k, 0]));
  for (const v of order.reverse()) {
    for (const w of out.get(v)) {
      if (!back.has(v + ">" + w)) rank.set(w, Math.max(rank.get(w), rank.get(v) + 1));
    }
  }
  return rank;
}

function blockHeight(b) {
  if (!b.group) return NODE_H;
  return b.nodes.length ? GROUP_HEAD + b.nodes.length * (NODE_H + 6) + GROUP_PAD - 6 : NODE_H;
}

export function layout(graph) {
  const { blocks, blockOfNode } = blocksOf(graph);
  const links = [];
  for (const e of graph.edges) {
    const a = blockOfNode.get(e.source), b = blockOfNode.get(e.target);
    if (a && b) links.push([a, b]);
  }
  const rank = ranks(blocks, links);
  const linked = new Set(links.flat());
  const columns = [];
  for (const [id, b] of blocks) {
    // Idle blocks with no edge at all go to a last column of their own.
    const r = linked.has(id) || b.nodes.some((n) => n.kind === "gateway") ? rank.get(id) : -1;
    b.rank = r;
  }
  const maxRank = Math.max(0, ...[...blocks.values()].map((b) => b.rank));
  for (const b of blocks.values()) {
    if (b.rank < 0) b.rank = linked.size ? maxRank + 1 : 0;
    (columns[b.rank] ||= []).push(b);
  }
  // Order each column by the mean position of its callers (one left-to-right sweep).
  const pos = new Map();
  const preds = new Map();
  for (const [a, b] of links) (preds.get(b) || preds.set(b, []).get(b)).push(a);
  for (const col of columns) {
    if (!col) continue;
    const key = (b) => {
      const p = (preds.get(b.id) || []).filter((x) => pos.has(x));
      return p.length ? p.reduce((t, x) => t + pos.get(x), 0) / p.length : Infinity;
    };
    col.sort((x, y) => key(x) - key(y) || x.id.localeCompare(y.id));
    col.forEach((b, i) => pos.set(b.id, i));
  }
  const where = new Map();  // node or group id -> {x, y, w, h}
  let width = 0, height = 0;
  columns.forEach((col, r) => {
    if (!col) return;
    let y = 20;
    const x = 20 + r * (NODE_W + 2 * GROUP_PAD + COL_GAP);
    for (const b of col) {
      const bh = blockHeight(b);
      b.box = { x, y, w: NODE_W + 2 * GROUP_PAD, h: bh };
      if (b.group) {
        where.set(b.group.id, b.nodes.length ? { x, y, w: b.box.w, h: GROUP_HEAD }
                                             : { x, y, w: b.box.w, h: bh });
        b.nodes.sort((m, n) => (m.version || m.name).localeCompare(n.version || n.name));
        b.nodes.forEach((n, i) => where.set(n.id, {
          x: x + GROUP_PAD, y: y + GROUP_HEAD + i * (NODE_H + 6), w: NODE_W, h: NODE_H }));
      } else {
        where.set(b.nodes[0].id, { x: x + GROUP_PAD, y, w: NODE_W, h: NODE_H });
      }
      y += bh + ROW_GAP;
      width = Math.max(width, x + b.box.w + 20);
      height = Math.max(height, y);
    }
  });
  return { blocks: [...blocks.values()], where, width: width + 20, height: height + 10 };
}

function lock(x, y) {
  return s("g", { class: "lock", transform: `translate(${x},${y})` },
    s("title", null, "mutual TLS"),
    s("path", { d: "M1.5 5 V3.5 a2.5 2.5 0 0 1 5 0 V5", fill: "none", stroke: "#3f6", "stroke-width": 1.4 }),
    s("rect", { x: 0, y: 5, width: 8, height: 6, rx: 1, fill: "#2d8a4e" }));
}

function edgeLabel(e) {
  if (e.rps === null) return `${pct(e.error_rate)} err · since start`;
  if (!e.rps && (e.protocols || []).includes("tcp")) {
    return `${bytes(e.tcp_bytes_per_s)} · ${rps(e.tcp_connections_per_s)} conn/s`;
  }
  const parts = [`${rps(e.rps)} rps`];
  if (e.error_rate) parts.push(`${pct(e.error_rate)} err`);
  if (e.p99_ms !== null && e.p99_ms !== undefined) parts.push(`p99 ${ms(e.p99_ms)}`);
  if (e.tcp_bytes_per_s) parts.push(bytes(e.tcp_bytes_per_s));
  return parts.join(" · ");
}

function nodeHealth(n) {
  if (n.registered && n.instances.length && n.connected < n.instances.length) return "disconnected";
  return n.inbound.health;
}

export function renderGraph(graph, { onSelect, selected }) {
  const { blocks, where, width, height } = layout(graph);
  const svg = s("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`,
                         "data-nodes": graph.nodes.length, "data-edges": graph.edges.length });
  svg.append(s("defs", null, ["idle", "healthy", "degraded", "failing"].map((k) =>
    s("marker", { id: "arrow-" + k, viewBox: "0 0 10 10", refX: 9, refY: 5,
                  markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow " + k,
                  fill: { idle: "#a3a9b3", healthy: "#3f9f5f", degraded: "#e0a100",
                          failing: "#d93a3a" }[k] })))));
  for (const b of blocks) {
    if (!b.group) continue;
    const g = b.group;
    const cls = ["group", "clickable", g.external ? "external" : "", g.inbound.health,
                 selected === g.id ? "selected" : ""].join(" ");
    svg.append(s("g", { class: cls, "data-id": g.id, onclick: () => onSelect({ group: g }) },
      s("rect", { class: "box", x: b.box.x, y: b.box.y, width: b.box.w, height: b.box.h, rx: 6 }),
      s("text", { class: "title", x: b.box.x + 8, y: b.box.y + 16 },
        `${g.name}${g.namespace && g.namespace !== "default" ? "." + g.namespace : ""}`),
      b.nodes.length ? null : s("text", { class: "sub", x: b.box.x + 8, y: b.box.y + 31 },
        g.external ? "outside the mesh" : "service")));
  }
  const edgeLayer = s("g", { class: "edges" });
  svg.append(edgeLayer);
  const placed = [];  // label boxes drawn so far: a label moves down until it overlaps none
  const place = (x, y, w) => {
    for (let tries = 0; tries < 40; tries++) {
      if (!placed.some((b) => Math.abs(b.x - x) < (b.w + w) / 2 && Math.abs(b.y - y) < 13)) break;
      y += 13;
    }
    placed.push({ x, y, w });
    return y;
  };
  const curves = [];
  for (const e of graph.edges) {
    const a = where.get(e.source), b = where.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + a.w, y1 = a.y + a.h / 2;
    const x2 = b.x - 2, y2 = b.y + Math.min(b.h, NODE_H) / 2;
    curves.push({ e, x1, y1, x2, y2 });
  }
  curves.sort((p, q) => (p.x1 + p.x2) - (q.x1 + q.x2) || (p.y1 + p.y2) - (q.y1 + q.y2));
  for (const { e, x1, y1, x2, y2 } of curves) {
    const dx = Math.max(40, Math.abs(x2 - x1) / 2);
    const d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
    const width = e.rps ? Math.min(6, 1.2 + Math.log10(1 + e.rps * 10)) : 1.2;
    const label = edgeLabel(e);
    const mx = (x1 + x2) / 2;
    const my = place(mx, (y1 + y2) / 2 - 4, label.length * 6 + (e.mtls ? 14 : 0));
    const cls = ["edge", "clickable", e.health, selected === e.id ? "selected" : ""].join(" ");
    edgeLayer.append(s("g", { class: cls, "data-id": e.id, "data-source": e.source,
                              "data-target": e.target, "data-health": e.health,
                              "data-error-rate": e.error_rate ?? "",
                              onclick: () => onSelect({ edge: e }) },
      s("path", { d, "stroke-width": width, "marker-end": `url(#arrow-${e.health})` }),
      s("path", { d, class: "hit" }),
      s("text", { x: mx + (e.mtls ? 7 : 0), y: my, "text-anchor": "middle" }, label),
      e.mtls ? lock(mx - label.length * 3 - 6, my - 10) : null));
  }
  for (const n of graph.nodes) {
    const box = where.get(n.id);
    if (!box) continue;
    const health = nodeHealth(n);
    const cls = ["node", "clickable", n.kind, health, selected === n.id ? "selected" : ""].join(" ");
    const title = n.kind === "workload" && n.version ? n.version : n.name;
    const sub = n.kind === "gateway" ? "ingress gateway"
      : n.kind === "unknown" ? "outside the mesh"
      : `${n.name} · ${n.connected}/${n.instances.length} connected`;
    svg.append(s("g", { class: cls, "data-id": n.id, "data-health": health,
                        onclick: () => onSelect({ node: n }) },
      s("rect", { x: box.x, y: box.y, width: box.w, height: box.h, rx: 5 }),
      s("text", { x: box.x + 8, y: box.y + 15 }, title),
      s("text", { class: "sub", x: box.x + 8, y: box.y + 30 }, sub)));
  }
  return svg;
}

function dl(pairs) {
  return h("dl", null, pairs.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

function trafficPairs(t) {
  return [
    ["requests/s", t.rps === null ? `– (${t.requests_since_start ?? 0} since start)` : rps(t.rps)],
    ["error rate", pct(t.error_rate)],
    ["p50 / p90 / p99", `${ms(t.p50_ms)} / ${ms(t.p90_ms)} / ${ms(t.p99_ms)}`],
  ];
}

export function renderDetail(sel) {
  if (sel.edge) {
    const e = sel.edge;
    const codes = Object.entries(e.codes || {}).map(([c, v]) => `${c}: ${rps(v)}`).join(", ");
    return [h("h2", null, "Edge"), dl([
      ["from", e.source], ["to", e.target], ["service", e.service], ...trafficPairs(e),
      ["responses/s", codes || "–"], ["mTLS", e.mtls ? "yes" : "no"],
      ["protocols", (e.protocols || []).join(", ")],
      ["TCP", `${bytes(e.tcp_bytes_per_s)}, ${rps(e.tcp_connections_per_s)} connections/s`],
    ]), serviceLink(e.service)];
  }
  if (sel.group) {
    const g = sel.group;
    return [h("h2", null, `Service ${g.name}`), dl([
      ["host", g.hostname], ["workloads", g.members.length], ...trafficPairs(g.inbound),
    ]), g.external ? null : h("p", null, h("a", { href: `#/services/${g.namespace}/${g.name}` },
                                              "Open the service page"))];
  }
  const n = sel.node;
  return [h("h2", null, n.kind === "gateway" ? "Ingress gateway" : `Workload ${n.name}`), dl([
    ["namespace", n.namespace || "–"], ["version", n.version || "–"],
    ["instances", `${n.instances.length} (${n.connected} connected, ${n.healthy} healthy)`],
    ["services", n.services.join(", ") || "–"], ...trafficPairs(n.inbound),
  ]), n.registered ? h("p", null, h("a", { href: `#/workloads/${n.namespace}/${n.name}` },
                                       "Open the workload page")) : null];
}

function serviceLink(hostname) {
  const m = /^([^.]+)\.([^.]+)\.svc\./.exec(hostname);
  return m ? h("p", null, h("a", { href: `#/services/${m[2]}/${m[1]}` }, "Open the service page"))
           : null;
}
