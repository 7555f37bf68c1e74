// The sluice admin dashboard: reads /config, /clusters, /plugins and
// /summary every few seconds and turns counters into rates (a rate needs
// two samples, so the previous ones are kept). Everything is written with
// textContent: config values are data, never markup.
"use strict";

const params = new URLSearchParams(location.search);
// ?refresh=SECONDS changes the period (at least a quarter of a second).
const period = Math.max(0.25, Number(params.get("refresh")) || 2) * 1000;
let prevSummary = null;
let prevPlugins = new Map();

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function tag(text, cls) { return el("span", text, "tag" + (cls ? " " + cls : "")); }

function cell(content, cls) {
  const td = el("td", undefined, cls);
  for (const c of [].concat(content)) {
    td.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return td;
}

function fill(tableId, rows, columns, emptyText) {
  const body = document.querySelector("#" + tableId + " tbody");
  const out = [];
  for (const r of rows) {
    const tr = el("tr");
    tr.dataset.name = r.name || "";
    tr.append(...columns(r));
    out.push(tr);
  }
  if (out.length === 0) {
    const tr = el("tr");
    const td = el("td", emptyText, "empty");
    td.colSpan = document.querySelectorAll("#" + tableId + " thead th").length;
    tr.append(td);
    out.push(tr);
  }
  body.replaceChildren(...out);
}

function rate(now, before, seconds) {
  if (before === undefined || before === null || !(seconds > 0)) return null;
  return Math.max(0, now - before) / seconds;
}

function fmtRate(r) { return r === null ? "–" : r.toFixed(1); }

function fmtBytes(n) {
  if (!n) return "0";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function fmtSeconds(s) {
  if (s === null || !isFinite(s)) return "–";
  if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1e3).toFixed(2) + " ms";
  return s.toFixed(2) + " s";
}

function describe(obj) {
  const parts = obj && typeof obj === "object" ? Object.entries(obj) : [];
  if (parts.length === 0) return [tag("any request")];
  return parts.map(([k, v]) => tag(k + " " + (typeof v === "object" ? JSON.stringify(v) : v)));
}

async function getJSON(path) {
  const resp = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  if (!resp.ok) throw new Error(path + ": " + resp.status);
  return resp.json();
}

function render(config, clusters, plugins, summary) {
  document.getElementById("mode").textContent = config.mode || "";
  const seconds = prevSummary ? (summary.time_ms - prevSummary.time_ms) / 1000 : 0;

  const total = rate(summary.requests, prevSummary && prevSummary.requests, seconds);
  const errors = rate(summary.errors, prevSummary && prevSummary.errors, seconds);
  document.getElementById("rate-requests").textContent = fmtRate(total);
  document.getElementById("rate-errors").textContent = fmtRate(errors);
  document.getElementById("error-ratio").textContent =
    total ? (100 * errors / total).toFixed(1) + " %" : "–";
  document.getElementById("total-requests").textContent = summary.requests;

  fill("listeners", config.listeners || [], (l) => [
    cell(l.name), cell(el("code", l.address)),
    cell((l.protocols || []).map((p) => tag(p))),
    cell(l.tls ? tag("tls", "ok") : "–"),
  ], "no listeners");

  const routeStats = new Map(summary.routes.map((r) => [r.name, r]));
  const prevRoutes = new Map(prevSummary ? prevSummary.routes.map((r) => [r.name, r]) : []);
  fill("routes", config.routes || [], (r) => {
    const s = routeStats.get(r.name) || { requests: 0, errors: 0 };
    const p = prevRoutes.get(r.name);
    return [
      cell(r.name), cell(describe(r.match)),
      cell((r.plugins || []).map((p) => tag(p))),
      cell((r.backends || []).map((b) => tag(b.cluster + (b.weight ? " ×" + b.weight : "")))),
      cell(fmtRate(rate(s.requests, p ? p.requests : (prevSummary ? 0 : null), seconds)), "num rate"),
      cell(fmtRate(rate(s.errors, p ? p.errors : (prevSummary ? 0 : null), seconds)), "num"),
      cell(s.requests, "num"),
    ];
  }, "no routes");

  const clusterStats = new Map(summary.clusters.map((c) => [c.name, c]));
  const prevClusters = new Map(prevSummary ? prevSummary.clusters.map((c) => [c.name, c]) : []);
  fill("clusters", clusters || [], (c) => {
    const s = clusterStats.get(c.name) || { requests: 0, failed: 0, ejections: 0 };
    const p = prevClusters.get(c.name);
    const eps = (c.endpoints || []).map((e) => {
      const state = e.ejected ? "ejected" : (e.healthy ? "healthy" : "unhealthy");
      const t = tag(e.address + " " + state, e.ejected ? "warn" : (e.healthy ? "ok" : "bad"));
      if (e.ejected_until) t.title = "ejected until " + e.ejected_until;
      return t;
    });
    return [
      cell(c.name), cell(c.lb), cell(eps.length ? eps : "none"),
      cell(c.active_requests, "num"),
      cell(fmtRate(rate(s.requests, p ? p.requests : (prevSummary ? 0 : null), seconds)), "num rate"),
      cell(s.failed, "num"), cell(s.ejections, "num"),
    ];
  }, "no clusters");

  const next = new Map();
  fill("plugins", plugins || [], (p) => {
    const rt = p.runtime || {};
    const before = prevPlugins.get(p.name);
    next.set(p.name, rt);
    const calls = rate(rt.calls, before && before.calls, seconds);
    const dCalls = before ? rt.calls - before.calls : 0;
    // Mean time per call over the last period; the mean since start when
    // nothing was called in it.
    const mean = dCalls > 0 ? (rt.call_seconds - before.call_seconds) / dCalls
      : (rt.calls ? rt.call_seconds / rt.calls : null);
    const failing = before && rt.failures > before.failures;
    const state = !p.runtime ? tag("not loaded", "bad")
      : failing ? tag("failing", "bad") : tag("loaded", "ok");
    return [
      cell(p.name), cell([el("code", p.wasm)].concat(rt.vm_id ? [" ", tag("vm " + rt.vm_id)] : [])),
      cell(state), cell(p.failure || ""),
      cell(rt.instances, "num"), cell(fmtBytes(rt.memory_bytes), "num"),
      cell(fmtRate(calls), "num"), cell(fmtSeconds(mean), "num"), cell(rt.failures, "num"),
    ];
  }, "no plugins");
  prevPlugins = next;
  prevSummary = summary;
}

async function tick() {
  const status = document.getElementById("status");
  try {
    const [config, clusters, plugins, summary] = await Promise.all(
      ["/config", "/clusters", "/plugins", "/summary"].map(getJSON));
    render(config, clusters, plugins, summary);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.classList.remove("error");
  } catch (err) {
    status.textContent = "cannot reach the admin listener: " + err.message;
    status.classList.add("error");
  } finally {
    setTimeout(tick, period);
  }
}

document.getElementById("interval").textContent = String(period / 1000);
tick();
