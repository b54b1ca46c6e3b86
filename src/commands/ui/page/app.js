// portcullis ui: the page. Plain DOM, no framework, nothing fetched from
// elsewhere. Text from servers and logs is untrusted: it is only ever set
// with textContent, never parsed as HTML.
"use strict";

const TOKEN = document.querySelector('meta[name="portcullis-token"]').content;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

async function api(path, body) {
  const opts = { headers: { "X-Portcullis-Token": TOKEN } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data;
  try { data = await r.json(); } catch (e) { data = { error: `HTTP ${r.status}` }; }
  return { status: r.status, data };
}

// ------------------------------------------------------------ policies

let servers = [];

async function loadServers() {
  const { data } = await api("/api/servers");
  servers = data.servers || [];
  $("dir").textContent = data.dir || "";
  const diag = $("diagnostics");
  diag.hidden = !data.diagnostics && !data.error;
  diag.textContent = data.error || data.diagnostics || "";
  const root = $("servers");
  root.replaceChildren();
  if (!servers.length) root.append(el("p", {}, "No server policy in this directory."));
  for (const s of servers) root.append(serverView(s));
}

function serverView(s) {
  const box = el("div", { class: "server", "data-server": s.name });
  box.append(el("h2", {}, s.name));
  box.append(el("div", { class: "meta" },
    `${s.file} · ${s.dialect} · default ${s.default}` +
    (s.scan ? "" : " · no saved scan: only the tools the policy names are shown") +
    (s.dialect === "catalogue"
      ? " · limits are written as sliding windows of 60, 3600 or 86400 seconds" : "")));
  for (const g of s.groups) {
    const group = el("div", { class: `group risk-${g.risk}` });
    group.append(el("h3", {}, `${g.risk} (${g.tools.length})`));
    const table = el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Tool"), el("th", {}, "Effect"), el("th", {}, "Rules"), el("th", {}, "Description and parameters"), el("th", {}, ""))));
    const body = el("tbody");
    for (const t of g.tools) body.append(toolRow(s, t));
    table.append(body);
    group.append(table);
    box.append(group);
  }
  return box;
}

function effectText(t) {
  if (t.effect === "limit" && t.limit) return `limit ${t.limit.max}/${t.limit.window}`;
  return t.effect + (t.conditional ? " (with conditions)" : "");
}

function toolRow(s, t) {
  const rules = el("td");
  for (const r of t.rules) {
    rules.append(el("div", { class: "rule" },
      el("span", {}, (r.inherited ? "(every tool) " : "") + r.name + (r.text ? `: ${r.text}` : "")), " ",
      el("span", { class: "where" }, r.where)));
  }
  const desc = el("td");
  if (t.description) desc.append(el("div", {}, t.description));
  if (t.params) {
    desc.append(el("div", { class: "params" }, t.params.length
      ? t.params.map((p) => `${p.name}: ${p.type}${p.required ? " (required)" : ""}`).join(", ")
      : "no parameters"));
  }
  if (!t.scanned) desc.append(el("div", { class: "meta" }, "not in a saved scan"));
  const edit = el("button", { class: "edit" }, "Edit");
  edit.addEventListener("click", () => openEditor(s, t));
  return el("tr", { "data-tool": t.name },
    el("td", { class: "name" }, t.name),
    el("td", {}, el("span", { class: `effect effect-${t.effect}` }, effectText(t))),
    rules, desc, el("td", {}, edit));
}

// -------------------------------------------------------------- editor

let editing = null;
let lastPreview = null;

function openEditor(s, t) {
  editing = { server: s.name, tool: t.name };
  lastPreview = null;
  $("editor-title").textContent = `${s.name} / ${t.name}`;
  $("edit-effect").value = t.effect;
  $("edit-reason").value = "";
  if (t.limit) {
    $("edit-max").value = t.limit.max;
    // A window the editor cannot write (e.g. a 90 s sliding one) shows as a minute: the preview's diff shows the change.
    $("edit-window").value = t.limit.edit_window || "minute";
  }
  for (const id of ["edit-diff", "edit-validate", "edit-tests", "edit-status"]) $(id).textContent = "";
  $("edit-save").disabled = true;
  $("edit-save").textContent = "Save";
  syncLimit();
  $("editor").hidden = false;
}

function syncLimit() {
  $("limit-fields").hidden = $("edit-effect").value !== "limit";
  $("deny-fields").hidden = $("edit-effect").value !== "deny";
  $("edit-save").disabled = true;
  lastPreview = null;
}

function change() {
  return { ...editing, effect: $("edit-effect").value, max: $("edit-max").value, window: $("edit-window").value, reason: $("edit-reason").value };
}

function showReport(data) {
  const diff = $("edit-diff");
  diff.replaceChildren();
  for (const [kind, text] of data.diff || []) {
    const cls = kind === "+" ? "add" : kind === "-" ? "del" : "ctx";
    diff.append(el("span", { class: cls }, kind === "…" ? "…" : `${kind} ${text}`));
  }
  if (data.diff && !data.changed) diff.textContent = "(no change)";
  $("edit-validate").textContent = data.validate ? data.validate.text : "";
  $("edit-tests").textContent = data.tests ? data.tests.text : "";
}

function setStatus(text, ok) {
  const s = $("edit-status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "error");
}

async function preview() {
  const { status, data } = await api("/api/preview", change());
  showReport(data);
  lastPreview = status === 200 ? data : null;
  const save = $("edit-save");
  if (status !== 200) {
    setStatus(data.error || `refused (HTTP ${status})`, false);
    save.disabled = true;
  } else if (!data.validate.ok) {
    setStatus("Invalid: the policy does not validate with this edit; it cannot be saved.", false);
    save.disabled = true;
  } else if (!data.tests.ok) {
    setStatus("Valid, but the policy's tests fail with this edit (see below).", false);
    save.disabled = false;
    save.textContent = "Save anyway";
  } else {
    setStatus("Valid" + (data.tests.present ? "; the policy's tests pass." : "."), true);
    save.disabled = !data.changed;
    save.textContent = "Save";
  }
}

async function save() {
  if (!lastPreview) return;
  const body = { ...change(), digest: lastPreview.digest, accept_failing_tests: !lastPreview.tests.ok };
  const { status, data } = await api("/api/save", body);
  showReport(data);
  if (status === 200 && data.saved) {
    setStatus(`Saved ${data.file}.`, true);
    $("edit-save").disabled = true;
    await loadServers();
  } else {
    setStatus(data.error || `refused (HTTP ${status})`, false);
  }
}

$("edit-effect").addEventListener("change", syncLimit);
$("edit-max").addEventListener("input", syncLimit);
$("edit-window").addEventListener("change", syncLimit);
$("edit-reason").addEventListener("input", syncLimit);
$("edit-preview").addEventListener("click", preview);
$("edit-save").addEventListener("click", save);
$("edit-close").addEventListener("click", () => { $("editor").hidden = true; });

// ----------------------------------------------------------- decisions

const COLOURS = ["#c0392b", "#2980b9", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#2c3e50", "#f39c12"];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Denials per minute, stacked by rule, with calls as a line.
function chart(c) {
  const W = 760, H = 220, L = 36, B = 24, T = 10;
  const n = c.minutes.length;
  const stacked = c.minutes.map((_, i) => c.denials.reduce((a, s) => a + s.counts[i], 0));
  const max = Math.max(1, ...stacked, ...c.calls);
  const x = (i) => L + (i * (W - L - 6)) / n;
  const bw = Math.max(2, (W - L - 6) / n - 2);
  const y = (v) => H - B - (v * (H - B - T)) / max;
  const root = svg("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "denials per minute by rule" });
  root.append(svg("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#999" }));
  root.append(svg("text", { x: 2, y: T + 8, "font-size": 10 }, String(max)));
  root.append(svg("text", { x: 2, y: H - B, "font-size": 10 }, "0"));
  for (let i = 0; i < n; i += 5) {
    root.append(svg("text", { x: x(i), y: H - 6, "font-size": 10 }, c.minutes[i].slice(11, 16)));
  }
  c.denials.forEach((s, k) => {
    const colour = COLOURS[k % COLOURS.length];
    s.counts.forEach((v, i) => {
      if (!v) return;
      const below = c.denials.slice(0, k).reduce((a, o) => a + o.counts[i], 0);
      const bar = svg("rect", { class: "bar", x: x(i), y: y(below + v), width: bw, height: y(below) - y(below + v), fill: colour });
      bar.append(svg("title", {}, `${c.minutes[i].slice(11, 16)} ${s.rule}: ${v}`));
      root.append(bar);
    });
  });
  const pts = c.calls.map((v, i) => `${x(i) + bw / 2},${y(v)}`).join(" ");
  root.append(svg("polyline", { points: pts, fill: "none", stroke: "#555", "stroke-dasharray": "3 2" }));
  return root;
}

async function loadDecisions() {
  const { data } = await api("/api/decisions");
  const root = $("decisions");
  root.replaceChildren();
  if (!data.configured) {
    root.append(el("p", {}, "No decision log: start `portcullis ui --audit-log FILE|DIR` with the file the proxies write (--audit-log)."));
    return;
  }
  if (data.error) { root.append(el("pre", { class: "diagnostics" }, data.error)); return; }
  const s = data.summary;
  root.append(el("div", { class: "cards" },
    el("div", { class: "card" }, el("div", { class: "n", id: "calls-total" }, s.calls), "calls"),
    el("div", { class: "card" }, el("div", { class: "n", id: "denied-total" }, s.denied), "denied"),
    el("div", { class: "card" }, el("div", { class: "n" }, `${(s.deny_rate * 100).toFixed(1)}%`), "deny rate"),
    el("div", { class: "card" }, el("div", { class: "n" }, s.instances.length), "proxy instances")));
  root.append(el("h3", {}, "Denials per minute by rule (last 30 minutes; dashed: all calls)"));
  root.append(chart(data.chart));
  const legend = el("div", { class: "legend" });
  data.chart.denials.forEach((d, k) => {
    const sw = el("span", { class: "swatch" });
    sw.style.background = COLOURS[k % COLOURS.length];
    legend.append(el("span", {}, sw, d.rule));
  });
  root.append(legend);
  root.append(el("h3", {}, "Top denying rules"));
  const rules = el("table", { id: "top-rules" }, el("tr", {}, el("th", {}, "Denials"), el("th", {}, "Rule"), el("th", {}, "Source")));
  for (const r of s.top_denying_rules) rules.append(el("tr", {}, el("td", {}, r.denials), el("td", {}, r.rule), el("td", {}, r.source)));
  root.append(rules);
  root.append(el("h3", {}, "Recent denials"));
  const recent = el("table", { id: "recent-denials" }, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Server"), el("th", {}, "Tool"), el("th", {}, "Rule"), el("th", {}, "Message")));
  for (const d of [...s.last_denials].reverse()) {
    recent.append(el("tr", { class: "denial" }, el("td", {}, d.time.slice(0, 19).replace("T", " ")), el("td", {}, d.server), el("td", {}, d.tool), el("td", {}, d.rule), el("td", {}, d.message)));
  }
  root.append(recent);
  root.append(el("p", { class: "meta" }, `As of ${s.now}; refreshed every 2 seconds. Logs: ${s.files.join(", ")}`));
}

// ---------------------------------------------------------------- tabs

let timer = null;
function show(view) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === view);
  $("view-policies").hidden = view !== "policies";
  $("view-decisions").hidden = view !== "decisions";
  clearInterval(timer);
  if (view === "decisions") {
    loadDecisions();
    timer = setInterval(loadDecisions, 2000);
  } else {
    loadServers();
  }
}
for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.view));
show("policies");
