// Foresight's live dashboard: polls the admin API (the same JSON as `GET /control`,
// `/control/history`, `/services` and `/services/{name}/backends`) and draws, per service, the
// observed load, the forecast at the lead with its planned band, the capacity ready and
// starting, the decisions with their reasons, forecast quality, the pool and the alerts.
// No framework, no CDN: SVG drawn by hand. With an admin token, open `/ui#token=TOKEN`: the
// token stays in the browser (a URL fragment is never sent) and goes out as a Bearer header.
"use strict";

const POLL_MS = 2000;
const WINDOW_S = 3 * 3600;
const SVG = "http://www.w3.org/2000/svg";

const token = (() => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("foresight-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("foresight-token");
})();

// Per service: its points (merged across polls) and the time of the newest.
const histories = new Map();

async function getJson(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(d));
const clock = (t) => new Date(t * 1000).toLocaleTimeString();

function list(v) {
  if (v === null) return [];
  return Array.isArray(v.services) ? v.services : [v];
}

async function poll() {
  try {
    const [control, services] = await Promise.all([getJson("/control"), getJson("/services")]);
    const statuses = new Map(list(control).map((s) => [s.service, s]));
    // Only the points since the newest held, per service.
    await Promise.all([...statuses.keys()].map(async (name) => {
      const held = histories.get(name) || { points: [], newest: null };
      const q = held.newest === null ? "" : "?since=" + held.newest;
      const h = await getJson("/services/" + encodeURIComponent(name) + "/control/history" + q);
      if (h) {
        const cutoff = Date.now() / 1000 - WINDOW_S;
        held.points = held.points.concat(h.points).filter((p) => p.t >= cutoff);
        held.newest = held.points.length ? held.points[held.points.length - 1].t : held.newest;
        held.meta = h;
      }
      histories.set(name, held);
    }));
    const names = (services || []).map((s) => s.name);
    for (const n of statuses.keys()) if (!names.includes(n)) names.push(n);
    const pools = new Map(await Promise.all(names.map(async (n) =>
      [n, await getJson("/services/" + encodeURIComponent(n) + "/backends")])));
    render(names, statuses, pools);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = String(e.message || e);
  }
}

function render(names, statuses, pools) {
  const main = document.getElementById("services");
  for (const name of names) {
    const id = "service-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
    let sec = document.getElementById(id);
    if (!sec) {
      sec = el("section", { id, class: "service", "data-service": name });
      main.append(sec);
    }
    sec.replaceChildren(...serviceView(name, statuses.get(name), histories.get(name), pools.get(name)));
  }
}

function serviceView(name, st, hist, pool) {
  const out = [el("h2", {}, name)];
  if (!st) {
    out.push(el("div", { class: "meta" }, "no control loop: the pool alone"));
    out.push(poolView(pool));
    return out;
  }
  // What the loop forecasts: requests per second, or open WebSocket connections.
  const unit = st.load_unit || "req/s";
  out.push(el("div", { class: "meta" },
    `${st.policy} · forecaster ${st.forecaster} · ${st.trusted ? "trusted" : "not trusted"} · ` +
    `observed ${fmt(st.observed_rps)} ${unit} · planned ${fmt(st.planned_rps)} ${unit} · ` +
    `${st.ready} ready, ${st.starting} starting, ${st.desired} wanted · ` +
    `${fmt(st.per_instance_rps)} ${unit} per instance`));
  const points = hist ? hist.points : [];
  const decisions = st.decisions || [];
  const started = Date.now() / 1000 - st.uptime_s;
  out.push(el("div", { class: "charts" },
    loadChart(points, st.per_instance_rps, decisions, started, unit),
    instanceChart(points)));
  out.push(legend());
  out.push(el("div", { class: "cols" },
    el("div", {}, el("h3", {}, "Decisions"), decisionsView(decisions, started)),
    el("div", {}, el("h3", {}, "Forecast quality (window)"), qualityView(points, st.planned_quantile, unit),
      el("h3", {}, "Alerts"), alertsView(st.alerts)),
    el("div", {}, el("h3", {}, "Pool"), poolView(pool))));
  return out;
}

function legend() {
  const item = (key, label) => el("span", {}, el("i", { class: "k-" + key }), label);
  return el("div", { class: "legend" },
    item("observed", "observed"), item("expected", "forecast at the lead (median)"),
    item("band", "planned band"), item("capacity", "capacity ready (dotted: and starting)"),
    item("desired", "decisions / wanted"));
}

// Scales for a chart of `w`×`h` with margins, over [t0, t1] and [0, ymax].
function scales(t0, t1, ymax, w, h) {
  const m = { l: 42, r: 8, t: 8, b: 20 };
  return {
    x: (t) => m.l + ((t - t0) / Math.max(1, t1 - t0)) * (w - m.l - m.r),
    y: (v) => h - m.b - (v / Math.max(1e-9, ymax)) * (h - m.t - m.b),
    m,
  };
}

function path(pts, cls) {
  if (pts.length === 0) return el("svg:g", {});
  const d = pts.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join("");
  return el("svg:path", { d, class: cls });
}

function stepPath(pts, cls) {
  const s = [];
  pts.forEach(([x, y], i) => {
    if (i) s.push([x, pts[i - 1][1]]);
    s.push([x, y]);
  });
  return path(s, cls);
}

function axes(svg, sc, t0, t1, ymax, w, h, unit) {
  for (const f of [0, 0.5, 1]) {
    const v = ymax * f;
    svg.append(el("svg:text", { x: 2, y: sc.y(v) + 3 }, fmt(v, v < 10 ? 1 : 0)));
  }
  svg.append(el("svg:text", { x: sc.m.l, y: h - 4 }, clock(t0)));
  svg.append(el("svg:text", { x: w - 60, y: h - 4 }, clock(t1)));
  svg.append(el("svg:text", { x: sc.m.l + 4, y: 14 }, unit));
}

function loadChart(points, perInstance, decisions, started, unit) {
  const w = 720, h = 220;
  const svg = el("svg:svg", { class: "chart load", viewBox: `0 0 ${w} ${h}`, role: "img" });
  if (points.length < 2) {
    svg.append(el("svg:text", { x: 50, y: 100 }, "waiting for the loop's first intervals…"));
    return svg;
  }
  const lead = points[points.length - 1].lead_s;
  const t0 = points[0].t, t1 = points[points.length - 1].t + lead;
  const cap = (p) => p.ready * perInstance;
  const ymax = 1.1 * Math.max(1, ...points.map((p) => Math.max(p.observed_rps, p.planned_rps || 0,
    p.expected_rps || 0, (p.ready + p.starting) * perInstance)));
  const sc = scales(t0, t1, ymax, w, h);
  axes(svg, sc, t0, t1, ymax, w, h, unit);
  // The band: between the expected and the planned rate, each drawn where it applies (t + lead).
  const fc = points.filter((p) => p.expected_rps !== null && p.planned_rps !== null);
  if (fc.length > 1) {
    const top = fc.map((p) => [sc.x(p.t + p.lead_s), sc.y(Math.max(p.planned_rps, p.expected_rps))]);
    const bottom = fc.map((p) => [sc.x(p.t + p.lead_s), sc.y(p.expected_rps)]).reverse();
    const d = top.concat(bottom).map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join("") + "Z";
    svg.append(el("svg:path", { d, class: "band" }));
    svg.append(path(fc.map((p) => [sc.x(p.t + p.lead_s), sc.y(p.expected_rps)]), "expected"));
  }
  svg.append(stepPath(points.map((p) => [sc.x(p.t), sc.y((p.ready + p.starting) * perInstance)]), "starting"));
  svg.append(stepPath(points.map((p) => [sc.x(p.t), sc.y(cap(p))]), "capacity"));
  svg.append(path(points.map((p) => [sc.x(p.t), sc.y(p.observed_rps)]), "observed"));
  for (const d of decisions) {
    const t = started + d.at_s;
    if (t < t0) continue;
    const line = el("svg:line", { class: "decision", x1: sc.x(t), x2: sc.x(t), y1: sc.m.t, y2: h - sc.m.b });
    line.append(el("svg:title", {}, `${clock(t)}: ${d.from} → ${d.to}: ${d.reason}`));
    svg.append(line);
  }
  return svg;
}

function instanceChart(points) {
  const w = 480, h = 220;
  const svg = el("svg:svg", { class: "chart instances", viewBox: `0 0 ${w} ${h}`, role: "img" });
  if (points.length < 2) return svg;
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const ymax = 1.2 * Math.max(1, ...points.map((p) => Math.max(p.ready + p.starting, p.desired)));
  const sc = scales(t0, t1, ymax, w, h);
  axes(svg, sc, t0, t1, ymax, w, h, "instances");
  svg.append(stepPath(points.map((p) => [sc.x(p.t), sc.y(p.ready + p.starting)]), "starting"));
  svg.append(stepPath(points.map((p) => [sc.x(p.t), sc.y(p.ready)]), "capacity"));
  svg.append(stepPath(points.map((p) => [sc.x(p.t), sc.y(p.desired)]), "desired"));
  return svg;
}

function decisionsView(decisions, started) {
  if (!decisions.length) return el("p", {}, "none yet");
  const rows = decisions.slice(-12).reverse().map((d) =>
    el("tr", { class: "decision-row" }, el("td", {}, clock(started + d.at_s)),
      el("td", {}, `${d.from} → ${d.to}`), el("td", {}, d.reason)));
  return el("table", {}, el("tr", {}, el("th", {}, "at"), el("th", {}, "instances"), el("th", {}, "why")), ...rows);
}

// Forecast quality over the window: each point's forecast for t + lead against what was
// observed then; the persistence baseline (the rate at t for t + lead) beside it.
function qualityView(points, q, unit) {
  const byTime = points.map((p) => p.t);
  const at = (t) => {
    let lo = 0, hi = byTime.length - 1;
    if (hi < 0 || t > byTime[hi] + 1e-6) return null;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (byTime[mid] < t - 1e-6) lo = mid + 1; else hi = mid; }
    return points[lo];
  };
  let n = 0, ae = 0, aeBase = 0, covered = 0, pinball = 0;
  for (const p of points) {
    if (p.expected_rps === null) continue;
    const later = at(p.t + p.lead_s);
    if (!later) continue;
    const y = later.observed_rps;
    n += 1;
    ae += Math.abs(y - p.expected_rps);
    aeBase += Math.abs(y - p.observed_rps);
    if (p.planned_rps !== null) {
      if (y <= p.planned_rps) covered += 1;
      const e = y - p.planned_rps;
      pinball += q ? Math.max(q * e, (q - 1) * e) : 0;
    }
  }
  if (!n) return el("p", { class: "quality" }, "no forecast has come due yet");
  const mae = ae / n, base = aeBase / n;
  return el("table", { class: "quality" },
    el("tr", {}, el("td", {}, "forecasts come due"), el("td", {}, n)),
    el("tr", {}, el("td", {}, "MAE (median)"), el("td", {}, fmt(mae, 2) + " " + unit)),
    el("tr", {}, el("td", {}, "MAE of persistence"), el("td", {}, fmt(base, 2) + " " + unit)),
    el("tr", {}, el("td", {}, "vs persistence"),
      el("td", { class: mae <= base ? "good" : "bad" }, fmt(base > 0 ? mae / base : NaN, 2) + "×")),
    el("tr", {}, el("td", {}, `coverage of the plan (q ${fmt(q, 2)})`), el("td", {}, fmt(100 * covered / n, 1) + "%")),
    el("tr", {}, el("td", {}, "pinball loss at q"), el("td", {}, fmt(pinball / n, 2))));
}

function alertsView(alerts) {
  if (!alerts || !alerts.length) return el("p", {}, "none firing");
  return el("ul", {}, ...alerts.map((a) => el("li", {}, a)));
}

function poolView(pool) {
  if (!pool) return el("p", {}, "—");
  const rows = pool.map((b) => el("tr", { class: "backend-row" },
    el("td", {}, b.address),
    el("td", { class: b.healthy ? "good" : "bad" }, b.healthy ? "healthy" : "unhealthy"),
    el("td", {}, b.in_flight),
    el("td", {}, [b.ejected ? "ejected" : "", b.draining ? "draining" : ""].filter(Boolean).join(", ") || "—")));
  return el("table", {}, el("tr", {}, el("th", {}, "instance"), el("th", {}, "health"),
    el("th", {}, "in flight"), el("th", {}, "state")), ...rows);
}

poll();
setInterval(poll, POLL_MS);
