/// The status page served at `GET /`: one self-contained HTML document (inline CSS and JS, SVG
/// charts drawn by hand, no external scripts or fonts). It polls `GET /status.json` every second.
///
/// Test hooks: `<body data-rendered="N">` counts successful renders, `data-errors` counts script
/// errors and failed polls (`window.swerveErrors` holds their messages), `data-models` lists the
/// models shown.
public let statusPageHTML = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>swerve status</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #f4f6f9; --card: #ffffff; --ink: #1d2533; --muted: #6b7585; --line: #e3e7ee;
  --accent: #2f6fed; --ok: #1f9d55; --warn: #c98a00; --bad: #d64545; --grid: #edf0f5;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #141b2d; color: #e8ecf5; padding: 14px 28px; display: flex; align-items: center; gap: 18px; }
header .logo { font-weight: 700; font-size: 19px; letter-spacing: .3px; }
header .logo span { color: #7fa6ff; }
header .meta { color: #9aa6bf; font-size: 13px; }
header .right { margin-left: auto; display: flex; gap: 14px; align-items: center; font-size: 13px; color: #9aa6bf; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pill.ok { background: #dff3e7; color: #146c3b; } .pill.warn { background: #fff1cc; color: #7a5400; }
.pill.bad { background: #fde2e2; color: #9b2121; } .pill.idle { background: #e8ebf1; color: #4c5566; }
header .pill.ok { background: #1f9d55; color: #fff; } header .pill.bad { background: #d64545; color: #fff; }
header .pill.warn { background: #c98a00; color: #fff; }
main { padding: 20px 28px 28px; max-width: 1400px; margin: 0 auto; }
.tiles { display: grid; grid-template-columns: repeat(5, 1fr); gap: 14px; margin-bottom: 16px; }
.tile, .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
.tile { padding: 12px 16px; }
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.tile .value { font-size: 24px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.tile .value small { font-size: 13px; color: var(--muted); font-weight: 500; margin-left: 3px; }
.card { padding: 14px 16px; }
.card h2 { margin: 0 0 8px; font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .6px; font-weight: 600; }
.card h2 .sub { text-transform: none; letter-spacing: 0; color: var(--ink); font-weight: 600; margin-left: 6px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px; padding: 6px 8px; border-bottom: 1px solid var(--line); }
td { padding: 7px 8px; border-bottom: 1px solid var(--grid); white-space: nowrap; }
td.state { white-space: normal; max-width: 420px; }
.err { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 420px; }
th.num, td.num { text-align: right; }
tr.model { cursor: pointer; } tr.model:hover td { background: #f7f9fc; } tr.model.sel td { background: #eef3ff; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 3px; margin-right: 8px; vertical-align: -1px; }
.err { color: var(--bad); font-size: 12px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
svg.chart { width: 100%; height: 170px; display: block; }
svg.chart text { font-size: 11px; fill: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; color: var(--muted); margin-top: 4px; min-height: 18px; }
.legend i { display: inline-block; width: 14px; height: 3px; border-radius: 2px; margin-right: 5px; vertical-align: 3px; }
footer { color: var(--muted); font-size: 12px; margin-top: 16px; }
footer a { color: var(--accent); text-decoration: none; margin-right: 14px; }
.empty { color: var(--muted); padding: 16px 8px; }
</style>
</head>
<body data-rendered="0" data-errors="0" data-models="">
<header>
  <div class="logo">swerve<span>.</span></div>
  <div class="meta" id="server">model server</div>
  <div class="right"><span id="updated">connecting</span><span id="state" class="pill idle">&hellip;</span></div>
</header>
<main>
  <section class="tiles">
    <div class="tile"><div class="label">Versions available</div><div class="value" id="t-avail">&ndash;</div></div>
    <div class="tile"><div class="label">Throughput</div><div class="value" id="t-rps">&ndash;</div></div>
    <div class="tile"><div class="label">Slowest p99 (10 s)</div><div class="value" id="t-p99">&ndash;</div></div>
    <div class="tile"><div class="label">Errors (10 s)</div><div class="value" id="t-err">&ndash;</div></div>
    <div class="tile"><div class="label">Model memory / budget</div><div class="value" id="t-mem">&ndash;</div></div>
  </section>
  <section class="grid">
    <div class="card"><h2>Throughput <span class="sub">requests / s</span></h2><svg class="chart" id="c-rps"></svg><div class="legend" id="l-rps"></div></div>
    <div class="card"><h2>Latency <span class="sub" id="lat-model">p50 / p90 / p99, ms</span></h2><svg class="chart" id="c-lat"></svg><div class="legend" id="l-lat"></div></div>
    <div class="card"><h2>Queue wait <span class="sub">mean, ms</span></h2><svg class="chart" id="c-queue"></svg><div class="legend" id="l-queue"></div></div>
    <div class="card"><h2>Batch size <span class="sub">mean rows per batch</span></h2><svg class="chart" id="c-batch"></svg><div class="legend" id="l-batch"></div></div>
  </section>
  <section class="card" style="margin-top:16px">
    <h2>Models</h2>
    <table>
      <thead><tr><th>Model</th><th>Version</th><th>State</th><th class="num">req/s</th><th class="num">p50</th>
        <th class="num">p99</th><th class="num">Mean batch</th><th class="num">Requests</th><th class="num">Failures</th>
        <th class="num">Pending</th><th class="num">Memory</th></tr></thead>
      <tbody id="models"><tr><td colspan="10" class="empty">Loading&hellip;</td></tr></tbody>
    </table>
  </section>
  <footer><a href="/metrics">/metrics</a><a href="/status.json">/status.json</a><a href="/v2/models/stats">/v2/models/stats</a>
    <span>Refreshed every second; percentiles are computed by the server over each second.</span></footer>
</main>
<script>
"use strict";
window.swerveErrors = [];
function fail(message) {
  window.swerveErrors.push(String(message));
  document.body.dataset.errors = String(window.swerveErrors.length);
}
window.addEventListener("error", e => fail(e.message));
window.addEventListener("unhandledrejection", e => fail(e.reason));

const COLORS = ["#2f6fed", "#e8743b", "#19a979", "#945ecf", "#d64545", "#13a4b4", "#c98a00", "#6c8893"];
const SVGNS = "http://www.w3.org/2000/svg";
let selected = null;
let polled = 0;

function el(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const k in attrs) node.setAttribute(k, attrs[k]);
  if (text !== undefined) node.textContent = text;
  return node;
}
function fmt(v, digits) {
  if (v === null || v === undefined) return "\u2013";
  if (v === 0) return "0";
  if (v >= 1000) return Math.round(v).toLocaleString("en-US");
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(digits === undefined ? 1 : Math.min(digits, 1));
  return v.toFixed(digits === undefined ? 2 : digits);
}
function ms(v) { return v === null || v === undefined ? "\u2013" : (v >= 1000 ? fmt(v / 1000) + " s" : fmt(v) + " ms"); }
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function text(id, value) { document.getElementById(id).textContent = value; }

// Draws lines [{label, color, values (null = gap), dash}] over the last `n` seconds.
function chart(id, lines, n, unit) {
  const svg = document.getElementById(id);
  const W = svg.clientWidth || 600, H = svg.clientHeight || 170;
  const L = 46, R = 10, T = 8, B = 22;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  let max = 0;
  for (const line of lines) for (const v of line.values) if (v !== null && v > max) max = v;
  const top = niceMax(max * 1.1);
  const x = i => L + (W - L - R) * (n <= 1 ? 0 : i / (n - 1));
  const y = v => T + (H - T - B) * (1 - v / top);
  for (let k = 0; k <= 4; k++) {
    const v = top * k / 4, yy = y(v);
    svg.appendChild(el("line", {x1: L, x2: W - R, y1: yy, y2: yy, stroke: k === 0 ? "#cfd5df" : "#edf0f5"}));
    svg.appendChild(el("text", {x: L - 6, y: yy + 4, "text-anchor": "end"}, fmt(v)));
  }
  for (const [i, label] of [[0, "-" + n + " s"], [Math.floor((n - 1) / 2), "-" + Math.round(n / 2) + " s"], [n - 1, "now"]]) {
    svg.appendChild(el("text", {x: x(i), y: H - 5, "text-anchor": i === 0 ? "start" : (i === n - 1 ? "end" : "middle")}, label));
  }
  for (const line of lines) {
    let d = "", pen = false;
    line.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    });
    if (line.fill && d) {
      const pts = line.values.map((v, i) => [i, v === null ? 0 : v]);
      let a = "M" + x(0) + " " + y(0);
      for (const [i, v] of pts) a += "L" + x(i).toFixed(1) + " " + y(v).toFixed(1);
      a += "L" + x(n - 1) + " " + y(0) + "Z";
      svg.appendChild(el("path", {d: a, fill: line.color, "fill-opacity": "0.08", stroke: "none"}));
    }
    if (d) svg.appendChild(el("path", {d: d, fill: "none", stroke: line.color, "stroke-width": "2",
      "stroke-linejoin": "round", "stroke-linecap": "round", "stroke-dasharray": line.dash || ""}));
    const pts = line.values.map((v, i) => [i, v]).filter(p => p[1] !== null);
    if (pts.length === 1) svg.appendChild(el("circle", {cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3, fill: line.color}));
  }
  if (!lines.length) svg.appendChild(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no traffic yet"));
}
function legend(id, lines) {
  const box = document.getElementById(id);
  box.innerHTML = "";
  for (const line of lines) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = line.color;
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(line.label));
    box.appendChild(item);
  }
}

function render(s) {
  const server = s.server;
  text("server", server.name + " " + server.version + " \u00b7 up " + uptime(server.uptime_s));
  const state = document.getElementById("state");
  state.textContent = server.draining ? "Shutting down" : (server.ready ? "Ready" : "Not ready");
  state.className = "pill " + (server.draining ? "bad" : (server.ready ? "ok" : "warn"));
  text("updated", "updated " + new Date(server.time_ms).toLocaleTimeString("en-GB"));

  const versions = [];
  s.models.forEach(m => m.versions.forEach(v => versions.push({model: m, v: v})));
  versions.forEach((entry, i) => entry.color = COLORS[i % COLORS.length]);
  const live = versions.filter(e => e.v.series);
  const active = live.filter(e => e.v.series.rps.some(r => r > 0));
  if (selected === null || !live.some(e => key(e) === selected)) {
    const busiest = active.slice().sort((a, b) => b.v.requests - a.v.requests)[0];
    selected = busiest ? key(busiest) : null;
  }

  const avail = versions.filter(e => e.v.state === "AVAILABLE").length;
  text("t-avail", avail + " / " + versions.length);
  const rps = live.reduce((a, e) => a + e.v.now.rps, 0);
  document.getElementById("t-rps").innerHTML = fmt(rps) + "<small>req/s</small>";
  const p99s = live.map(e => e.v.now.p99_ms).filter(v => v !== null);
  text("t-p99", p99s.length ? ms(Math.max.apply(null, p99s)) : "\u2013");
  const errs = live.reduce((a, e) => a + e.v.series.errors.slice(-s.summary_s).reduce((x, y) => x + y, 0), 0);
  text("t-err", String(errs));
  const mem = s.memory || {}, mib = b => (b / 1048576).toFixed(0);
  document.getElementById("t-mem").innerHTML = mib(mem.models_bytes || 0) + (mem.budget_bytes ? " / " + mib(mem.budget_bytes) : "")
    + "<small>MiB" + (mem.evictions !== undefined ? " \u00b7 " + mem.evictions + " evicted" : "") + "</small>";

  const body = document.getElementById("models");
  body.innerHTML = "";
  if (!versions.length) body.innerHTML = '<tr><td colspan="11" class="empty">The model store holds no models.</td></tr>';
  s.models.forEach(m => {
    if (!m.versions.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td>\u2013</td><td></td><td colspan='8' class='err'></td>";
      tr.children[0].textContent = m.name;
      tr.children[3].textContent = m.error || "no version to serve";
      body.appendChild(tr);
    }
  });
  versions.forEach((entry, index) => {
    const v = entry.v, tr = document.createElement("tr");
    const first = index === 0 || versions[index - 1].model !== entry.model;
    tr.className = "model" + (key(entry) === selected ? " sel" : "");
    tr.onclick = () => { selected = key(entry); render(s); };
    const cells = [entry.model.name, v.version, "", v.now ? fmt(v.now.rps) : "\u2013", ms(v.now && v.now.p50_ms),
      ms(v.now && v.now.p99_ms), v.now ? fmt(v.now.batch) : "\u2013", v.requests === undefined ? "\u2013" : v.requests.toLocaleString("en-US"),
      v.failures === undefined ? "\u2013" : v.failures.toLocaleString("en-US"), v.pending === undefined ? "\u2013" : String(v.pending),
      v.memory_bytes === undefined ? "\u2013" : (v.memory_bytes / 1048576).toFixed(1) + " MiB"];
    cells.forEach((c0, i) => {
      let c = c0;
      const td = document.createElement("td");
      if (i >= 3) td.className = "num";
      if (i === 2) td.className = "state";
      if (i === 0 && !first) c = "";
      if (i === 0) {
        const dot = document.createElement("span");
        dot.className = "dot";
        dot.style.background = entry.color;
        td.appendChild(dot);
      }
      if (i === 2) {
        const pill = document.createElement("span");
        pill.className = "pill " + ({AVAILABLE: "ok", LOADING: "warn", START: "warn", UNLOADING: "warn", FAILED: "bad"}[v.state] || "idle");
        pill.textContent = v.state;
        td.appendChild(pill);
        if (v.error) { const e = document.createElement("span"); e.className = "err"; e.textContent = v.error; e.title = v.error; td.appendChild(e); }
      } else {
        td.appendChild(document.createTextNode(c));
      }
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });

  const n = s.window_s;
  const perVersion = (field) => active.map(e => ({label: e.model.name + " v" + e.v.version, color: e.color, values: e.v.series[field]}));
  const rpsLines = perVersion("rps").map(l => Object.assign(l, {fill: true}));
  chart("c-rps", rpsLines, n, "");
  legend("l-rps", rpsLines);
  const chosen = active.find(e => key(e) === selected);
  const latLines = chosen ? [
    {label: "p50", color: chosen.color, values: chosen.v.series.p50_ms},
    {label: "p90", color: "#e8743b", values: chosen.v.series.p90_ms, dash: "5 3"},
    {label: "p99", color: "#d64545", values: chosen.v.series.p99_ms, dash: "2 3"}] : [];
  text("lat-model", (chosen ? chosen.model.name + " v" + chosen.v.version + " \u00b7 " : "") + "p50 / p90 / p99, ms");
  chart("c-lat", latLines, n, "ms");
  legend("l-lat", latLines);
  const queueLines = perVersion("queue_ms");
  chart("c-queue", queueLines, n, "ms");
  legend("l-queue", queueLines);
  const batchLines = perVersion("batch");
  chart("c-batch", batchLines, n, "");
  legend("l-batch", batchLines);

  document.body.dataset.models = s.models.map(m => m.name).join(",");
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered) + 1);
}
function key(entry) { return entry.model.name + "/" + entry.v.version; }
function uptime(s) {
  if (s < 120) return s + " s";
  if (s < 7200) return Math.floor(s / 60) + " min";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
let last = null;
async function poll() {
  try {
    const response = await fetch("/status.json", {cache: "no-store"});
    if (!response.ok) throw new Error("GET /status.json answered " + response.status);
    last = await response.json();
    render(last);
  } catch (e) {
    const state = document.getElementById("state");
    state.textContent = "Unreachable";
    state.className = "pill bad";
    text("updated", String(e.message || e));
    if (polled === 0) fail(e.message || e);
  }
  polled++;
  setTimeout(poll, 1000);
}
window.addEventListener("resize", () => { if (last) render(last); });
poll();
</script>
</body>
</html>
"""#
