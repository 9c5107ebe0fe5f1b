// The Wavelaunch dashboard: fetch /api/v1/dashboard with the API token, draw SVG charts.
// No library and no network beyond this app: it must work on a closed network.
"use strict";

const TOKEN_KEY = "wavelaunch.apiToken";
const REFRESH_MS = 30000;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { ours: "#2f6fdf", naive: "#b9c3d3" };

// -- formatting (the same as the CLI's: thousands separators, dollars to 4 places) ----------
const fmtInt = (n) => Math.round(n).toLocaleString("en-US");
const fmtMoney = (n) => "$" + Number(n).toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 });
const fmtPct = (r) => (100 * r).toFixed(1) + "%";

// -- the token: ?token=... once (then removed from the address bar), else this tab's copy ----
function currentToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function askForToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.body.dataset.state = "needs-token";
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    form.hidden = true;
    load();
  };
}

function showError(message) {
  const el = document.getElementById("error");
  el.textContent = message;
  el.hidden = false;
  document.body.dataset.state = "error";
}

// -- small SVG helpers ----------------------------------------------------------------------
function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  if (parent) parent.appendChild(el);
  return el;
}

function empty(container, message) {
  container.replaceChildren();
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = message;
  container.appendChild(p);
}

// Grouped vertical bars: categories along x, one bar per series in each group.
function barChart(container, categories, series, format) {
  if (!categories.length) return empty(container, "No data yet.");
  const width = 520, height = 220, left = 64, bottom = 40, top = 14;
  const max = Math.max(1e-12, ...series.flatMap((s) => s.values));
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  const plotW = width - left - 8, plotH = height - bottom - top;
  const groupW = plotW / categories.length;
  const barW = Math.min(48, (groupW * 0.8) / series.length);
  // y axis: 0, half, max
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH * (1 - frac);
    svgEl("line", { x1: left, x2: width - 8, y1: y, y2: y, stroke: "#e1e5ec" }, svg);
    svgEl("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, svg).textContent = format(max * frac);
  }
  categories.forEach((category, i) => {
    const x0 = left + i * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, j) => {
      const value = s.values[i];
      const h = (plotH * value) / max;
      const rect = svgEl(
        "rect",
        {
          x: x0 + j * barW, y: top + plotH - h, width: barW - 2, height: Math.max(h, 0),
          fill: s.color, "data-series": s.name, "data-category": category, "data-value": String(value),
        },
        svg,
      );
      svgEl("title", {}, rect).textContent = `${category} ${s.name}: ${format(value)}`;
    });
    const label = category.length > 18 ? category.slice(0, 17) + "…" : category;
    svgEl("text", { x: left + i * groupW + groupW / 2, y: height - bottom + 16, "text-anchor": "middle" }, svg)
      .textContent = label;
  });
  container.replaceChildren(svg);
}

// A half-circle gauge per budget (used / limit).
function gauges(container, budgets) {
  if (!budgets.length) return empty(container, "No budgets configured.");
  container.replaceChildren();
  for (const b of budgets) {
    const ratio = Math.max(0, Math.min(1, b.use_ratio));
    const svg = svgEl("svg", { viewBox: "0 0 120 76", width: "140", role: "img", "data-value": String(b.use_ratio) });
    const arc = (r) => {
      const angle = Math.PI * (1 - r);
      return `M 10 64 A 50 50 0 0 1 ${60 + 50 * Math.cos(angle)} ${64 - 50 * Math.sin(angle)}`;
    };
    svgEl("path", { d: arc(1), stroke: "#e1e5ec", "stroke-width": 10, fill: "none" }, svg);
    const color = ratio >= 0.9 ? "#c8382f" : ratio >= 0.75 ? "#d68a00" : "#2e9d5b";
    if (ratio > 0) svgEl("path", { d: arc(ratio), stroke: color, "stroke-width": 10, fill: "none" }, svg);
    svgEl("text", { x: 60, y: 60, "text-anchor": "middle" }, svg).textContent = fmtPct(b.use_ratio);
    svgEl("text", { x: 60, y: 74, "text-anchor": "middle" }, svg).textContent = `${b.budget} ${b.period}`;
    container.appendChild(svg);
  }
}

// -- rendering ------------------------------------------------------------------------------
function setFigure(id, value, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.dataset.value = String(value);
}

function render(data) {
  const report = data.report;
  const t = report.totals;
  setFigure("total-tokens", t.total_tokens, fmtInt(t.total_tokens));
  setFigure("baseline-tokens", t.baseline_tokens, fmtInt(t.baseline_tokens));
  setFigure("saved-tokens", t.saved_tokens, fmtInt(t.saved_tokens));
  setFigure("total-cost", t.cost, fmtMoney(t.cost));
  setFigure("saved-cost", t.saved_cost, fmtMoney(t.saved_cost));
  setFigure("hit-rate", t.cache_hit_rate, fmtPct(t.cache_hit_rate));
  setFigure("calls", t.calls, fmtInt(t.calls));
  setFigure("documents", data.documents, fmtInt(data.documents));
  document.getElementById("generated-at").textContent = "as of " + data.generated_at;
  document.getElementById("web-ui").href = data.web_ui_url;

  const days = Object.keys(report.by_day);
  barChart(document.getElementById("spend-chart"), days, [
    { name: "ours", color: COLORS.ours, values: days.map((d) => report.by_day[d].cost) },
    { name: "naive", color: COLORS.naive, values: days.map((d) => report.by_day[d].baseline_cost) },
  ], fmtMoney);
  barChart(document.getElementById("tokens-chart"), t.calls ? ["all documents"] : [], [
    { name: "ours", color: COLORS.ours, values: [t.total_tokens] },
    { name: "naive", color: COLORS.naive, values: [t.baseline_tokens] },
  ], fmtInt);
  const tiers = Object.keys(report.cache_hit_rate_by_tier);
  barChart(document.getElementById("hit-chart"), tiers, [
    { name: "hit rate", color: COLORS.ours, values: tiers.map((k) => report.cache_hit_rate_by_tier[k]) },
  ], fmtPct);
  const kinds = Object.keys(report.by_document_type).filter((k) => k !== "-");
  barChart(document.getElementById("kind-chart"), kinds, [
    { name: "ours", color: COLORS.ours, values: kinds.map((k) => report.by_document_type[k].cost) },
    { name: "naive", color: COLORS.naive, values: kinds.map((k) => report.by_document_type[k].baseline_cost) },
  ], fmtMoney);
  // Rows with no service tier ("-") are hits and embeddings: no call was billed on a tier.
  const serviceTiers = Object.keys(report.by_service_tier || {}).filter((k) => k !== "-");
  barChart(document.getElementById("service-tier-chart"), serviceTiers, [
    { name: "spend", color: COLORS.ours, values: serviceTiers.map((k) => report.by_service_tier[k].cost) },
  ], fmtMoney);

  gauges(document.getElementById("budgets"), data.budgets);

  const alerts = document.getElementById("alerts");
  alerts.replaceChildren();
  if (!data.alerts.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No alerts.";
    alerts.appendChild(li);
  }
  for (const a of data.alerts) {
    const li = document.createElement("li");
    li.className = "alert-" + (a.level || "warning");
    li.textContent = `${a.at || ""} ${a.message}`;
    alerts.appendChild(li);
  }

  const counts = data.reviews.counts;
  document.getElementById("review-counts").textContent =
    `newest versions: ${counts.approved} approved, ${counts.draft} draft, ${counts.changes_requested} changes requested`;
  const reviews = document.getElementById("reviews");
  reviews.replaceChildren();
  for (const d of data.reviews.waiting) {
    const tr = document.createElement("tr");
    tr.className = "review-" + d.review_state;
    const cells = [d.client_id, d.document_key, String(d.version), d.review_state.replace("_", " "), d.reviewed_by || "",
      d.created_at.slice(0, 19).replace("T", " ")];
    cells.forEach((cell, i) => {
      const td = document.createElement("td");
      if (i === 2) td.className = "num";
      td.textContent = cell;
      tr.appendChild(td);
    });
    reviews.appendChild(tr);
  }
  if (!data.reviews.waiting.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 6;
    td.className = "empty";
    td.textContent = "Nothing waiting for review.";
    tr.appendChild(td);
    reviews.appendChild(tr);
  }

  const body = document.getElementById("recent");
  body.replaceChildren();
  for (const r of data.recent) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = r.web_ui_url;
    link.textContent = r.workflow_id;
    link.className = "workflow-link";
    link.target = "_blank";
    link.rel = "noopener";
    const cells = [link, (r.run_id || "").slice(0, 8), r.client_id || "", r.document_type || "", r.last_call_at.slice(0, 19).replace("T", " "),
      fmtInt(r.calls), fmtInt(r.total_tokens), fmtMoney(r.cost), fmtMoney(r.saved_cost)];
    cells.forEach((cell, i) => {
      const td = document.createElement("td");
      if (i >= 5) td.className = "num";
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  if (!data.recent.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 9;
    td.className = "empty";
    td.textContent = "No generations yet.";
    tr.appendChild(td);
    body.appendChild(tr);
  }
  document.body.dataset.state = "ready";
}

async function load() {
  const token = currentToken();
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let answer;
  try {
    answer = await fetch("/api/v1/dashboard", { headers });
  } catch (err) {
    return showError("Cannot reach the API: " + err);
  }
  if (answer.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    return askForToken();
  }
  if (!answer.ok) return showError(`The API answered ${answer.status}.`);
  document.getElementById("error").hidden = true;
  render(await answer.json());
}

load();
setInterval(() => { if (document.body.dataset.state === "ready") load(); }, REFRESH_MS);
