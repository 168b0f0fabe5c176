// Small helpers shared by the pages: DOM building (text is never parsed as HTML),
// number formatting, the API client.

export const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function rps(v) {
  if (v === null || v === undefined) return "–";
  if (v === 0) return "0";
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}

export function pct(v) {
  if (v === null || v === undefined) return "–";
  const p = v * 100;
  return (p === 0 ? "0" : p < 1 ? p.toFixed(2) : p < 10 ? p.toFixed(1) : p.toFixed(0)) + "%";
}

export function ms(v) {
  if (v === null || v === undefined) return "–";
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " ms";
}

export function bytes(v) {
  if (v === null || v === undefined) return "–";
  if (v >= 1e6) return (v / 1e6).toFixed(1) + " MB/s";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + " kB/s";
  return v.toFixed(0) + " B/s";
}

export function stateClass(state) {
  return "state " + String(state || "").replace(/ /g, "-");
}

export class LoginNeeded extends Error {}

export async function api(path, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  const resp = await fetch(path + query, { credentials: "same-origin",
                                           headers: { Accept: "application/json" } });
  if (resp.status === 401) throw new LoginNeeded();
  const body = await resp.json();
  if (!resp.ok) {
    const errs = (body.errors || []).map((e) => e.text || e.message).join("; ");
    throw new Error(errs || `${path}: HTTP ${resp.status}`);
  }
  return body;
}

export function table(headers, rows, attrs) {
  return h("table", attrs,
    h("thead", null, h("tr", null, headers.map((t) => h("th", null, t)))),
    h("tbody", null, rows));
}

export function trafficCells(t) {
  return [
    h("td", { class: "num" }, t.rps === null ? "–" : rps(t.rps)),
    h("td", { class: "num " + stateClass(t.health) }, pct(t.error_rate)),
    h("td", { class: "num" }, ms(t.p99_ms)),
  ];
}
