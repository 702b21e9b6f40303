// app.js -- the tombo dashboard: polls the broker's REST API each second (no library, no CDN) and
// draws live counters, the client list, the topic tree with retained values and the packet trace
// of one client as a sequence diagram. ?trace=CLIENT_ID in the page's URL starts tracing at once.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (n) => n >= 1e9 ? (n / 1e9).toFixed(2) + "G" : n >= 1e6 ? (n / 1e6).toFixed(2) + "M"
  : n >= 1e4 ? (n / 1e3).toFixed(1) + "k" : String(Math.round(n));
const api = async (path, opts) => {
  const r = await fetch(path, Object.assign({ cache: "no-store" }, opts || {}));
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
};
const el = (tag, attrs, text) => {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
};

// ---- live counters and rates ----
let prev = null;
const samples = []; // [{t, pubIn, pubOut}] of the last two minutes (rates per second)

async function tickStats() {
  const s = await api("/api/v1/stats");
  const now = performance.now();
  $("version").textContent = s.version;
  $("uptime").textContent = "up " + s.uptime_seconds + " s";
  $("c-connected").textContent = s.clients_connected;
  $("c-sessions").textContent = s.sessions;
  $("c-pub-in").textContent = s.publish_received;
  $("c-pub-out").textContent = s.publish_sent;
  $("c-dropped").textContent = s.publish_dropped;
  $("c-queued").textContent = s.messages_queued;
  $("c-retained").textContent = s.retained;
  $("c-subs").textContent = s.subscriptions;
  if (prev) {
    const dt = (now - prev.t) / 1000 || 1;
    const rate = (k) => Math.max(0, (s[k] - prev.s[k]) / dt);
    $("r-pub-in").textContent = fmt(rate("publish_received"));
    $("r-pub-out").textContent = fmt(rate("publish_sent"));
    $("r-bytes-in").textContent = fmt(rate("bytes_received"));
    $("r-bytes-out").textContent = fmt(rate("bytes_sent"));
    samples.push({ pubIn: rate("publish_received"), pubOut: rate("publish_sent"), total: s.publish_received });
    if (samples.length > 120) samples.shift();
    drawSpark();
  }
  // what the page has shown, for tests and curious readers: the counter at each tick
  const seen = JSON.parse($("counters").dataset.samples);
  seen.push(s.publish_received);
  $("counters").dataset.samples = JSON.stringify(seen.slice(-120));
  prev = { t: now, s };
}

function drawSpark() {
  const c = $("spark"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...samples.map((p) => Math.max(p.pubIn, p.pubOut)));
  const line = (key, color) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    samples.forEach((p, i) => {
      const x = c.width - (samples.length - 1 - i) * (c.width / 119);
      const y = c.height - 4 - (p[key] / max) * (c.height - 18);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  };
  line("pubIn", "#2f6fdf"); line("pubOut", "#1f9d6b");
  g.fillStyle = "#6b7385"; g.font = "12px sans-serif"; g.fillText("max " + fmt(max) + "/s", 6, 14);
}

// ---- clients ----
async function tickClients() {
  const f = $("client-filter").value;
  const r = await api("/api/v1/clients?limit=200" + (f ? "&filter=" + encodeURIComponent(f) : ""));
  $("clients-total").textContent = "(" + r.total + ")";
  const tb = $("clients").tBodies[0];
  tb.textContent = "";
  for (const c of r.clients) {
    const tr = el("tr", { "data-client": c.client_id });
    tr.append(el("td", { class: "id", title: c.client_id }, c.client_id),
      el("td", { class: c.connected ? "on" : "off" }, c.connected ? "connected" : "offline"),
      el("td", {}, c.protocol), el("td", {}, c.subscriptions), el("td", {}, c.queued), el("td", {}, c.inflight));
    const td = el("td");
    const t = el("button", {}, "trace");
    t.onclick = () => startTrace(c.client_id);
    td.append(t);
    if (c.connected) {
      const k = el("button", { class: "kick" }, "kick");
      k.onclick = async () => {
        await fetch("/api/v1/clients/" + encodeURIComponent(c.client_id), { method: "DELETE" });
        tickClients();
      };
      td.append(" ", k);
    }
    tr.append(td);
    tb.append(tr);
  }
}

// ---- topic tree with retained values ----
async function tickTopics() {
  const parts = [api("/api/v1/topics?filter=%23&limit=2000")];
  if ($("show-sys").checked) parts.push(api("/api/v1/topics?filter=%24SYS%2F%23&limit=2000"));
  const all = (await Promise.all(parts)).flatMap((r) => r.topics);
  const root = {};
  for (const t of all) {
    let node = root;
    for (const level of t.topic.split("/")) node = (node[level] = node[level] || {});
    node["\u0000value"] = t;
  }
  const render = (node) => {
    const ul = el("ul");
    for (const k of Object.keys(node).sort()) {
      if (k === "\u0000value") continue;
      const li = el("li", {}, k === "" ? "(empty)" : k);
      const v = node[k]["\u0000value"];
      if (v) li.append(el("span", { class: "val", title: v.payload_bytes + " bytes, QoS " + v.qos }, "= " + v.payload));
      const sub = render(node[k]);
      if (sub.childElementCount) li.append(sub);
      ul.append(li);
    }
    return ul;
  };
  const box = $("topics");
  box.textContent = "";
  box.append(all.length ? render(root) : el("p", {}, "no retained messages"));
}

// ---- packet trace as a sequence diagram ----
let traceAfter = 0, traceEvents = [], traceClient = null;

async function startTrace(id) {
  $("trace-id").value = id;
  await api("/api/v1/trace?client=" + encodeURIComponent(id), { method: "POST" });
  traceAfter = 0; traceEvents = []; traceClient = id;
  drawTrace();
}

function label(e) {
  let s = e.type;
  if (e.type === "PUBLISH") s += " q" + e.qos + (e.retain ? " r" : "") + (e.dup ? " dup" : "");
  if (e.packet_id) s += " id=" + e.packet_id;
  return s;
}

function drawTrace() {
  const svg = $("trace"), ns = "http://www.w3.org/2000/svg";
  const W = Math.max(700, $("trace-box").clientWidth - 4), left = 140, right = W - 140, top = 40, step = 34;
  const H = top + traceEvents.length * step + 20;
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.textContent = "";
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const defs = add("defs", {});
  for (const [id, color] of [["ah-in", "#2f6fdf"], ["ah-out", "#1f9d6b"]]) {
    const m = document.createElementNS(ns, "marker");
    for (const [k, v] of Object.entries({ id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" })) m.setAttribute(k, v);
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", "M0,0 L10,5 L0,10 z"); p.setAttribute("fill", color);
    m.append(p); defs.append(m);
  }
  add("text", { x: left, y: 20, "text-anchor": "middle", class: "name" }, "client " + (traceClient || "?"));
  add("text", { x: right, y: 20, "text-anchor": "middle", class: "name" }, "broker (tombo)");
  add("line", { x1: left, y1: 28, x2: left, y2: H, class: "life" });
  add("line", { x1: right, y1: 28, x2: right, y2: H, class: "life" });
  traceEvents.forEach((e, i) => {
    const y = top + i * step + 14, out = e.dir === "out";
    const [x1, x2] = out ? [right, left] : [left, right];
    add("line", { x1, y1: y, x2, y2: y, class: out ? "arrow-out" : "arrow-in", "stroke-width": 2,
      "marker-end": "url(#" + (out ? "ah-out" : "ah-in") + ")" });
    add("text", { x: (left + right) / 2, y: y - 5, "text-anchor": "middle", class: "pkt", "data-type": e.type }, label(e));
    const t = new Date(e.time_ms);
    add("text", { x: 4, y: y + 4, fill: "#6b7385" }, t.toTimeString().slice(0, 8) + "." + String(t.getMilliseconds()).padStart(3, "0"));
    if (e.detail) add("text", { x: (left + right) / 2, y: y + 13, "text-anchor": "middle", fill: "#6b7385" },
      e.detail.length > 90 ? e.detail.slice(0, 90) + "…" : e.detail);
  });
}

async function tickTrace() {
  const r = await api("/api/v1/trace?after=" + traceAfter);
  if (r.client_id !== traceClient) { traceClient = r.client_id; traceEvents = []; traceAfter = 0; }
  $("trace-who").textContent = r.client_id === null ? "choose a client with “trace”" : "of " + r.client_id;
  if (r.events.length) {
    traceEvents = traceEvents.concat(r.events).slice(-300);
    traceAfter = r.events[r.events.length - 1].seq;
  }
  const box = $("trace-box"), atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  drawTrace();
  if (atEnd) box.scrollTop = box.scrollHeight; // follow the newest packets unless the reader scrolled up
}

// ---- the loop ----
async function tick() {
  try {
    await Promise.all([tickStats(), tickClients(), tickTopics(), tickTrace()]);
    $("status").textContent = "live"; $("status").className = "status ok";
  } catch (err) {
    $("status").textContent = "broker unreachable"; $("status").className = "status err";
  }
}

$("trace-start").onclick = () => $("trace-id").value && startTrace($("trace-id").value);
$("trace-stop").onclick = async () => { await api("/api/v1/trace", { method: "DELETE" }); };
$("trace-clear").onclick = () => { traceEvents = []; drawTrace(); };

(async () => {
  const want = new URLSearchParams(location.search).get("trace");
  if (want) await startTrace(want).catch(() => {});
  await tick();
  setInterval(tick, 1000);
})();
