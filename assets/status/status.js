// The status page's figures, computed in the page from this admin listener's own /modules
// (JSON) and /metrics (Prometheus text): no Prometheus needed.
//
// - First paint: from one read of /metrics, each module's lifetime figures (requests,
//   errors, p50/p95/p99 from the cumulative histogram buckets, as histogram_quantile()
//   does), labelled "since start".
// - From the second poll on: rates and the latest p99, from the difference between two
//   reads (as rate() does), labelled "last poll", and kept for 10 minutes in the page's
//   memory to draw the charts (uPlot, served by the gateway itself).
// - What needs attention is listed above everything and highlighted in the table: failed
//   modules with their error, modules answering mostly 5xx, a pool near full, and a module
//   source whose last successful poll is old, and a key-value store whose calls failed as
//   unavailable since the last poll.
// - The key-value stores, from wasmgate_kv_operations_total: each store's calls and
//   errors by result.
"use strict";

const POLL_MS = 2000;
const HISTORY_POINTS = 300; // 10 minutes of polls
const TOP_N = 8; // modules with sparklines
const MOSTLY = 0.5; // a module answering more than this share of 5xx needs attention
const MIN_REQUESTS_FOR_SHARE = 5; // ... once it has answered this many
const POOL_NEAR_FULL = 0.9;
const STALE_SOURCE_S = 300;
// SERVER_ERRORS (the outcomes answered 5xx) comes from the gateway itself: /outcomes.js.
const MIN_SPAN_S = 60; // a chart's time axis spans at least this, even with one point
const COLORS = ["#1f6fb5", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#e67700", "#0b7285",
  "#5c940d", "#364fc7", "#a61e4d", "#495057", "#087f5b", "#9c36b5"];

// ---- reading /metrics ----

function parseMetrics(text) {
  const series = [];
  for (const line of text.split("\n")) {
    if (!line || line.charCodeAt(0) === 35) continue; // '#'
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const pair of m[2].matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    series.push({ name: m[1], labels, value: parseFloat(m[3]) });
  }
  return series;
}

function emptyModule() {
  return { requests: 0, outcomes: {}, duration: {}, ttfb: {} };
}

/// One read of /metrics, per module and for the gateway.
function scrape(text) {
  const modules = new Map();
  const gateway = { slots: 0, inUse: 0, waiting: 0, sources: [], stores: new Map() };
  const mod = (name) => modules.get(name) || modules.set(name, emptyModule()).get(name);
  for (const s of parseMetrics(text)) {
    const l = s.labels;
    switch (s.name) {
      case "wasmgate_requests_total": {
        const m = mod(l.module);
        m.requests += s.value;
        m.outcomes[l.outcome] = (m.outcomes[l.outcome] || 0) + s.value;
        break;
      }
      case "wasmgate_request_duration_seconds_bucket": mod(l.module).duration[l.le] = s.value; break;
      case "wasmgate_time_to_first_byte_seconds_bucket": mod(l.module).ttfb[l.le] = s.value; break;
      case "wasmgate_pool_slots": gateway.slots = s.value; break;
      case "wasmgate_pool_slots_in_use": gateway.inUse = s.value; break;
      case "wasmgate_requests_waiting_for_slot": gateway.waiting = s.value; break;
      case "wasmgate_source_last_success_timestamp_seconds": gateway.sources.push({ source: l.source, last: s.value }); break;
      case "wasmgate_kv_operations_total": {
        const st = gateway.stores.get(l.store) || gateway.stores.set(l.store, {}).get(l.store);
        st[l.result] = (st[l.result] || 0) + s.value;
        break;
      }
    }
  }
  return { modules, gateway };
}

/// histogram_quantile() over cumulative buckets {le: count}.
function quantile(q, buckets) {
  const bounds = Object.keys(buckets)
    .map((le) => [le === "+Inf" ? Infinity : parseFloat(le), buckets[le]])
    .sort((a, b) => a[0] - b[0]);
  const total = bounds.length ? bounds[bounds.length - 1][1] : 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lowerBound = 0, lowerCount = 0;
  for (const [bound, count] of bounds) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      return lowerBound + (bound - lowerBound) * ((rank - lowerCount) / Math.max(count - lowerCount, 1e-9));
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return null;
}

function minus(now, before) {
  const out = {};
  for (const k in now) out[k] = now[k] - ((before && before[k]) || 0);
  return out;
}

function addInto(sum, buckets) {
  for (const k in buckets) sum[k] = (sum[k] || 0) + buckets[k];
  return sum;
}

function serverErrors(outcomes) {
  let n = 0;
  for (const o in outcomes) if (SERVER_ERRORS.has(o)) n += outcomes[o];
  return n;
}

function errors(outcomes) {
  let n = 0;
  for (const o in outcomes) if (o !== "ok") n += outcomes[o];
  return n;
}

// ---- formatting ----

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1e3).toFixed(1) + " ms";
  return s.toFixed(2) + " s";
}

const fmtCount = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en"));
const fmtRate = (r) => (r === null || r === undefined ? "…" : r.toFixed(1));

// ---- the state kept between polls ----

const state = {
  polls: 0,
  previous: null, // { at (s), scrape }
  times: [],
  gateway: { rate: [], p50: [], p99: [], ttfb: [], inUse: [], waiting: [], errors: new Map() },
  modules: new Map(), // name -> { rate: [], p99: [] }
  sort: { key: null, ascending: true },
  filter: "",
  rows: [],
  stores: [], // one row per key-value store (storeRows)
};

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY_POINTS) list.shift();
}

/// What changed since the previous read: per module and for the gateway.
function interval(now, at) {
  const prev = state.previous;
  if (!prev) return null;
  const secs = Math.max(at - prev.at, 1e-3);
  const perModule = new Map();
  const all = { duration: {}, ttfb: {}, outcomes: {}, requests: 0 };
  for (const [name, cur] of now.modules) {
    const before = prev.scrape.modules.get(name) || emptyModule();
    const d = {
      rate: (cur.requests - before.requests) / secs,
      outcomes: minus(cur.outcomes, before.outcomes),
      duration: minus(cur.duration, before.duration),
    };
    d.p99 = quantile(0.99, d.duration);
    perModule.set(name, d);
    all.requests += cur.requests - before.requests;
    addInto(all.duration, d.duration);
    addInto(all.ttfb, minus(cur.ttfb, before.ttfb));
    addInto(all.outcomes, d.outcomes);
  }
  return { secs, perModule, all };
}

function record(at, now, delta) {
  push(state.times, at);
  const g = state.gateway;
  push(g.inUse, now.gateway.inUse);
  push(g.waiting, now.gateway.waiting);
  push(g.rate, delta ? delta.all.requests / delta.secs : null);
  push(g.p50, delta ? quantile(0.5, delta.all.duration) : null);
  push(g.p99, delta ? quantile(0.99, delta.all.duration) : null);
  push(g.ttfb, delta ? quantile(0.99, delta.all.ttfb) : null);
  const outcomes = delta ? delta.all.outcomes : {};
  for (const o in outcomes) if (o !== "ok" && outcomes[o] > 0 && !g.errors.has(o)) {
    g.errors.set(o, state.times.slice(0, -1).map(() => 0));
  }
  for (const [o, list] of g.errors) push(list, (outcomes[o] || 0) / (delta ? delta.secs : 1));
  for (const [name] of now.modules) {
    const h = state.modules.get(name) || state.modules.set(name, { rate: [], p99: [] }).get(name);
    while (h.rate.length < state.times.length - 1) { h.rate.push(null); h.p99.push(null); }
    const d = delta && delta.perModule.get(name);
    push(h.rate, d ? d.rate : null);
    push(h.p99, d && d.p99 !== null ? d.p99 * 1000 : null);
  }
}

// ---- the table ----

const COLUMNS = [
  { key: "name", label: "module" },
  { key: "state", label: "state", cls: (r) => r.state },
  { key: "abi", label: "abi" },
  { key: "requests", label: "requests", num: true, fmt: fmtCount },
  { key: "errors", label: "errors", num: true, fmt: fmtCount },
  { key: "p50", label: "p50", num: true, fmt: fmtSeconds },
  { key: "p95", label: "p95", num: true, fmt: fmtSeconds },
  { key: "p99", label: "p99", num: true, fmt: fmtSeconds },
  { key: "rate", label: "req/s", num: true, fmt: fmtRate },
  { key: "recentP99", label: "p99", num: true, fmt: fmtSeconds },
  { key: "loaded", label: "loaded", fmt: (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "–") },
  { key: "digest", label: "digest", cls: () => "digest", fmt: (d) => (d ? d.slice(0, 19) + "…" : "–") },
  { key: "source", label: "source", fmt: (s) => s || "–" },
  { key: "error", label: "error", cls: () => "error", fmt: (e) => e || "" },
];

function buildRows(modules, now, delta) {
  return modules.map((m) => {
    const life = now.modules.get(m.name) || emptyModule();
    const d = delta && delta.perModule.get(m.name);
    const recentShare = d && d.rate > 0 ? serverErrors(d.outcomes) / (d.rate * delta.secs) : null;
    const lifeShare = life.requests >= MIN_REQUESTS_FOR_SHARE ? serverErrors(life.outcomes) / life.requests : null;
    const share = recentShare !== null ? recentShare : lifeShare;
    return {
      name: m.name, state: m.state, abi: m.abi || "–",
      requests: life.requests, errors: errors(life.outcomes),
      p50: quantile(0.5, life.duration), p95: quantile(0.95, life.duration), p99: quantile(0.99, life.duration),
      rate: d ? d.rate : null, recentP99: d ? d.p99 : null,
      loaded: m.loaded_at, digest: m.digest, source: m.source, error: m.error,
      mostly5xx: share !== null && share > MOSTLY,
      attention: m.state === "failed" || (share !== null && share > MOSTLY),
    };
  });
}

function compare(key, ascending) {
  return (a, b) => {
    const x = a[key], y = b[key];
    const missing = (v) => v === null || v === undefined || v === "";
    if (missing(x) || missing(y)) return missing(x) - missing(y);
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return ascending ? c : -c;
  };
}

function renderHeader() {
  const cells = COLUMNS.map((c) => {
    const sorted = state.sort.key === c.key;
    const cls = sorted ? `sorted${state.sort.ascending ? " ascending" : ""}` : "";
    return `<th data-key="${c.key}" class="${cls}" title="sort by ${esc(c.label)}">${esc(c.label)}</th>`;
  });
  document.getElementById("columns").innerHTML = cells.join("");
}

function renderTable() {
  const needle = state.filter.toLowerCase();
  let rows = state.rows;
  if (needle) {
    rows = rows.filter((r) => [r.name, r.state, r.abi, r.error || ""].some((v) => v.toLowerCase().includes(needle)));
  }
  rows = rows.slice();
  if (state.sort.key) {
    rows.sort(compare(state.sort.key, state.sort.ascending));
  } else {
    // Attention first, then by name.
    rows.sort((a, b) => (b.attention - a.attention) || a.name.localeCompare(b.name));
  }
  const html = rows.map((r) => {
    const cells = COLUMNS.map((c) => {
      const v = r[c.key];
      const text = c.fmt ? c.fmt(v) : (v === null || v === undefined ? "–" : v);
      const cls = [c.num ? "num" : "", c.cls ? c.cls(r) : ""].filter(Boolean).join(" ");
      return `<td${cls ? ` class="${esc(cls)}"` : ""}>${esc(text)}</td>`;
    });
    return `<tr data-module="${esc(r.name)}"${r.attention ? ' class="attention"' : ""}>${cells.join("")}</tr>`;
  });
  document.getElementById("modules").innerHTML = html.join("");
  document.getElementById("shown").textContent =
    rows.length === state.rows.length ? `${rows.length} modules` : `showing ${rows.length} of ${state.rows.length}`;
}

// ---- key-value stores ----

/// The results of a key-value call that are no failure: a `get` of a missing key answers
/// `not_found`.
const STORE_SUCCESS = new Set(["ok", "not_found"]);

function storeErrors(results) {
  let n = 0;
  for (const r in results) if (!STORE_SUCCESS.has(r)) n += results[r];
  return n;
}

/// Each store's calls, errors and errors by result since start, and its errors per second
/// since the previous poll.
function storeRows(now) {
  const before = state.previous ? state.previous.scrape.gateway.stores : new Map();
  const secs = state.previous ? Math.max(Date.now() / 1000 - state.previous.at, 1e-3) : null;
  return [...now.gateway.stores].map(([store, results]) => {
    const recent = minus(results, before.get(store));
    return {
      store, calls: Object.values(results).reduce((a, b) => a + b, 0), errors: storeErrors(results),
      byResult: Object.entries(results).filter(([r, n]) => !STORE_SUCCESS.has(r) && n > 0),
      errorRate: secs === null ? null : storeErrors(recent) / secs,
      unavailable: secs === null ? 0 : recent.unavailable || 0,
    };
  }).sort((a, b) => (b.errors - a.errors) || a.store.localeCompare(b.store));
}

function renderStores(rows) {
  document.getElementById("stores").hidden = rows.length === 0;
  document.getElementById("store-rows").innerHTML = rows.map((r) => {
    const results = r.byResult.map(([result, n]) => `${result} ${fmtCount(n)}`).join(", ") || "–";
    return `<tr data-store="${esc(r.store)}"${r.unavailable > 0 ? ' class="attention"' : ""}>` +
      `<td>${esc(r.store)}</td><td class="num">${esc(fmtCount(r.calls))}</td>` +
      `<td class="num">${esc(fmtCount(r.errors))}</td><td class="error">${esc(results)}</td>` +
      `<td class="num">${esc(fmtRate(r.errorRate))}</td></tr>`;
  }).join("");
}

// ---- what needs attention ----

function renderAttention(now) {
  const items = [];
  const failed = state.rows.filter((r) => r.state === "failed");
  for (const r of failed.slice(0, 5)) items.push(["", `${r.name} failed to load: ${r.error || "no reason given"}`]);
  if (failed.length > 5) items.push(["", `and ${failed.length - 5} more failed modules`]);
  const erring = state.rows.filter((r) => r.mostly5xx);
  for (const r of erring.slice(0, 5)) items.push(["", `${r.name} answers mostly 5xx`]);
  if (erring.length > 5) items.push(["", `and ${erring.length - 5} more modules answering mostly 5xx`]);
  const g = now.gateway;
  if (g.slots > 0 && g.inUse / g.slots >= POOL_NEAR_FULL) {
    items.push(["warn", `the pool is near full: ${g.inUse} of ${g.slots} slots in use`]);
  }
  if (g.waiting > 0) items.push(["warn", `${g.waiting} requests are waiting for a slot`]);
  const nowS = Date.now() / 1000;
  for (const s of g.sources) {
    if (nowS - s.last > STALE_SOURCE_S) {
      items.push(["warn", `source ${s.source} last polled successfully ${Math.round((nowS - s.last) / 60)} min ago`]);
    }
  }
  for (const r of state.stores.filter((st) => st.unavailable > 0)) {
    items.push(["", `store ${r.store}: ${fmtCount(r.unavailable)} calls unavailable since the last poll (is its backend up?)`]);
  }
  const list = document.getElementById("attention");
  list.hidden = items.length === 0;
  list.innerHTML = items.map(([cls, text]) => `<li class="${cls}">${esc(text)}</li>`).join("");
}

// ---- charts ----

const charts = {};

function chartWidth(el) {
  return Math.max(200, el.clientWidth || 300);
}

function makeChart(id, series, opts = {}) {
  const el = document.getElementById(id);
  el.replaceChildren();
  const plot = new uPlot({
    width: chartWidth(el), height: opts.height || 150,
    legend: { show: true, live: false },
    scales: { x: { time: true, range: timeRange }, ...(opts.scales || {}) },
    axes: [{}, { size: 62, values: opts.values }],
    series: [{}, ...series.map((s, i) => ({ stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, ...s }))],
  }, [state.times, ...series.map(() => [])], el);
  plot.el = el;
  return plot;
}

/// The time axis: the points kept, and at least the last minute (uPlot would stretch a
/// single point over a day).
function timeRange(u) {
  const xs = u.data[0];
  const last = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
  return [Math.min(xs.length ? xs[0] : last, last - MIN_SPAN_S), last];
}

const ms = (u, vals) => vals.map((v) => (v === null ? "" : v.toFixed(v < 10 ? 1 : 0) + " ms"));

function ensureCharts() {
  if (charts.rate) return;
  charts.rate = makeChart("chart-rate", [{ label: "req/s" }]);
  charts.latency = makeChart("chart-latency", [{ label: "p50" }, { label: "p99" }], { values: ms });
  charts.ttfb = makeChart("chart-ttfb", [{ label: "p99" }], { values: ms });
  charts.pool = makeChart("chart-pool", [{ label: "in use" }, { label: "waiting" }]);
}

function drawCharts(now) {
  ensureCharts();
  const g = state.gateway;
  document.getElementById("pool-caption").textContent =
    `pool slots in use (of ${fmtCount(now.gateway.slots)}), requests waiting`;
  const toMs = (list) => list.map((v) => (v === null ? null : v * 1000));
  charts.rate.setData([state.times, g.rate]);
  charts.latency.setData([state.times, toMs(g.p50), toMs(g.p99)]);
  charts.ttfb.setData([state.times, toMs(g.ttfb)]);
  charts.pool.setData([state.times, g.inUse, g.waiting]);
  const outcomes = [...g.errors.keys()];
  if (!charts.errors || charts.errors.outcomes.join() !== outcomes.join()) {
    if (charts.errors) charts.errors.destroy();
    const series = outcomes.length ? outcomes.map((o) => ({ label: o })) : [{ label: "none yet" }];
    charts.errors = makeChart("chart-errors", series);
    charts.errors.outcomes = outcomes;
  }
  const lists = outcomes.length ? outcomes.map((o) => g.errors.get(o)) : [state.times.map(() => 0)];
  charts.errors.setData([state.times, ...lists]);
}

const sparklines = new Map(); // name -> { card, plot }

function drawSparklines() {
  const busiest = state.rows
    .filter((r) => r.state === "ready" && r.requests > 0)
    .sort((a, b) => ((b.rate || 0) - (a.rate || 0)) || (b.requests - a.requests))
    .slice(0, TOP_N);
  const wanted = new Set(busiest.map((r) => r.name));
  for (const [name, s] of sparklines) {
    if (!wanted.has(name)) { s.plot.destroy(); s.card.remove(); sparklines.delete(name); }
  }
  const box = document.getElementById("sparklines");
  busiest.forEach((r, i) => {
    let s = sparklines.get(r.name);
    if (!s) {
      const card = document.createElement("div");
      card.className = "spark";
      card.dataset.module = r.name;
      card.innerHTML = `<div class="name"></div><div class="figures"></div><div class="plot"></div>`;
      card.querySelector(".name").textContent = r.name;
      box.append(card);
      const plotEl = card.querySelector(".plot");
      const plot = new uPlot({
        width: Math.max(180, plotEl.clientWidth || 200), height: 50,
        legend: { show: false }, cursor: { show: false },
        scales: { x: { time: true, range: timeRange }, rate: {}, p99: {} },
        axes: [{ show: false }, { show: false, scale: "rate" }, { show: false, scale: "p99" }],
        series: [{}, { scale: "rate", stroke: COLORS[0], width: 1.5 }, { scale: "p99", stroke: COLORS[1], width: 1 }],
      }, [[], [], []], plotEl);
      s = { card, plot };
      sparklines.set(r.name, s);
    }
    box.append(s.card); // keeps the order by traffic
    const h = state.modules.get(r.name) || { rate: [], p99: [] };
    const n = state.times.length;
    s.plot.setData([state.times, h.rate.slice(-n), h.p99.slice(-n)]);
    s.card.querySelector(".figures").textContent =
      `${fmtRate(r.rate)} req/s · p99 ${fmtSeconds(r.recentP99 !== null ? r.recentP99 : r.p99)}`;
    s.card.style.order = i;
  });
  document.getElementById("busiest").hidden = busiest.length === 0;
}

window.addEventListener("resize", () => {
  for (const c of Object.values(charts)) c.setSize({ width: chartWidth(c.el), height: 150 });
});

// ---- polling ----

function summarize(modules, delta) {
  const ready = modules.filter((m) => m.state === "ready").length;
  const failed = modules.length - ready;
  const total = state.rows.reduce((n, r) => n + r.requests, 0);
  const rate = delta ? `${(delta.all.requests / delta.secs).toFixed(1)} req/s` : "rates from the next poll";
  return `${modules.length} modules, ${ready} ready${failed ? `, ${failed} failed` : ""} · ` +
    `${fmtCount(total)} requests since start · ${rate} · updated ${new Date().toLocaleTimeString()}`;
}

async function poll() {
  try {
    const [modules, metricsText] = await Promise.all([
      fetch("/modules").then((r) => r.json()),
      fetch("/metrics").then((r) => r.text()),
    ]);
    const at = Date.now() / 1000;
    const now = scrape(metricsText);
    const delta = interval(now, at);
    record(at, now, delta);
    state.rows = buildRows(modules, now, delta);
    state.stores = storeRows(now);
    renderTable();
    renderStores(state.stores);
    renderAttention(now);
    drawCharts(now);
    drawSparklines();
    document.getElementById("summary").textContent = summarize(modules, delta);
    state.previous = { at, scrape: now };
    state.polls += 1;
  } catch (e) {
    document.getElementById("summary").textContent = "cannot reach the admin listener: " + e;
  }
}

document.getElementById("columns").addEventListener("click", (e) => {
  const key = e.target.closest("th") && e.target.closest("th").dataset.key;
  if (!key) return;
  state.sort = { key, ascending: state.sort.key === key ? !state.sort.ascending : true };
  renderHeader();
  renderTable();
});
document.getElementById("filter").addEventListener("input", (e) => {
  state.filter = e.target.value;
  renderTable();
});

// For the end-to-end test, and for anyone curious in the console.
window.wasmgateStatus = { state, charts, sparklines };

renderHeader();
poll();
setInterval(poll, POLL_MS);
