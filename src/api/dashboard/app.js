// codestep dashboard: plain JS, no build step, no dependencies.
//
// Rules kept throughout:
// - Data from the API reaches the DOM only through textContent / attributes (never innerHTML).
// - Secrets are read from password inputs, sent once, and the input is cleared; they are never logged,
//   stored or shown.
// - The workspace token lives in sessionStorage (this tab only) and is removed on sign-out or 401.
"use strict";

(function () {
  const TOKEN_KEY = "codestep.token";
  const REFRESH_MS = 10000;
  const PAGE = 50;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const state = {
    token: null,
    workspace: null,
    connectors: [],
    view: null, // "signin" | "list" | "detail"
    current: null, // name of the connector in the detail view
    timer: null,
    logCursor: null,
    logFilters: {},
    blockedCursor: null,
    blockedOpen: false,
    formMode: "add", // "add" | "edit"
    editing: null,
    loadSeq: 0,
    runsCursor: null,
    runsSeq: 0,
    currentRun: null,
    // The add/edit form's problems: input id → message, shown all at once.
    formErrors: new Map(),
  };

  // ---------- small helpers ----------

  const $ = (id) => document.getElementById(id);

  /** Makes an element: attrs are set as attributes (or properties for a few), children are nodes or text. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function setText(id, text) {
    $(id).textContent = text == null ? "" : String(text);
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function fmtNumber(n) {
    return typeof n === "number" && isFinite(n) ? n.toLocaleString("en-US") : "–";
  }

  /** RFC 3339 → "2026-11-25 15:00:03" (UTC); anything unparsable is shown as given. */
  function fmtTime(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    if (isNaN(d.getTime())) return String(ts);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "");
  }

  function fmtHour(ts) {
    const d = new Date(ts);
    if (isNaN(d.getTime())) return "";
    return String(d.getUTCHours()).padStart(2, "0") + ":00";
  }

  function timeCell(ts) {
    return h("td", { class: "nowrap" }, h("time", { datetime: ts || "", text: fmtTime(ts) }));
  }

  /** "header Authorization: Bearer {{secret}}" / "query ?api_key=" / "path /bot{{secret}}{{path}}" … */
  function placementText(p) {
    if (!p || typeof p !== "object") return "";
    if (p.type === "header" && Array.isArray(p.headers)) {
      return "header " + p.headers.map((h) => (h.name || "") + ": " + (h.template || "")).join("; ");
    }
    if (p.type === "header") return "header " + (p.name || "") + ": " + (p.template || "");
    if (p.type === "query") return "query ?" + (p.param || "") + "=";
    if (p.type === "basic") return "basic " + (p.username || "") + ":" + (p.password || "{{secret}}");
    if (p.type === "path") return "path " + (p.template || "");
    if (p.type === "aws_sigv4") return "aws_sigv4 " + (p.region || "") + "/" + (p.service || "");
    return String(p.type || "");
  }

  function errorCount(c) {
    return (c && c.stats && typeof c.stats.errors_24h === "number") ? c.stats.errors_24h : 0;
  }

  function hasAlert(stats) {
    return !!stats && (stats.alert === true || (typeof stats.errors_24h === "number" && stats.errors_24h > 0));
  }

  /** The server's health (ok | some_errors | failing | idle), or one derived from the counts. */
  function healthOf(stats) {
    if (stats && typeof stats.health === "string") return stats.health;
    if (!stats || !stats.requests_24h) return "idle";
    return hasAlert(stats) ? "some_errors" : "ok";
  }

  const HEALTH_TEXT = { ok: "OK", some_errors: "Some errors", failing: "Failing", idle: "Idle" };

  /** The badge for a connector's health; the alert badge when it had errors. */
  function healthBadge(stats) {
    const health = healthOf(stats);
    const bad = health === "some_errors" || health === "failing";
    const rate = stats && typeof stats.error_rate_24h === "number" ? (stats.error_rate_24h * 100).toFixed(1) + " %" : "";
    let title = "";
    if (health === "failing") {
      title = (stats.recent_errors || 0) + " of its last " + (stats.recent_requests || 0) + " requests failed";
    } else if (health === "some_errors") {
      title = fmtNumber(stats.errors_24h) + " errors in the last 24 hours (" + rate + ")";
    } else if (health === "idle") {
      title = "No requests in the last 24 hours";
    } else {
      title = "No errors in the last 24 hours";
    }
    return h("span", {
      class: "badge " + (bad ? "badge-alert badge-" + health : "badge-ok badge-" + health),
      "data-testid": bad ? "alert-badge" : "ok-badge",
      "data-health": health,
      title,
      text: HEALTH_TEXT[health] || health,
    });
  }

  function runLink(id) {
    if (!id) return h("span", { class: "muted", text: "" });
    return h("a", { href: "#/runs/" + encodeURIComponent(id), class: "run-link", "data-testid": "run-link", title: id },
      h("code", { text: shortId(id) }));
  }

  function wsPath(rest) {
    return "/v1/workspaces/" + encodeURIComponent(state.workspace) + rest;
  }

  function connectorPath(name, rest) {
    return wsPath("/connectors/" + encodeURIComponent(name) + (rest || ""));
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (_e) {
      throw new ApiError(0, "network", "Cannot reach the codestep server.");
    }
    if (resp.status === 204) return null;
    let data = null;
    const text = await resp.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_e) {
        data = null;
      }
    }
    if (!resp.ok) {
      const err = data && data.error ? data.error : {};
      const e = new ApiError(
        resp.status,
        err.code || "http_" + resp.status,
        err.message || "Request failed (HTTP " + resp.status + ").",
        err.field
      );
      if (resp.status === 401 && state.token && path !== "/v1/me") {
        signOut("Your session has ended: the token was not accepted. Sign in again.");
      }
      throw e;
    }
    return data;
  }

  // ---------- sign-in ----------

  async function signIn(token) {
    state.token = token;
    let me;
    try {
      me = await api("GET", "/v1/me");
    } catch (e) {
      state.token = null;
      throw e;
    }
    if (!me || !me.workspace) {
      state.token = null;
      throw new ApiError(0, "bad_token", "This token does not belong to a workspace.");
    }
    state.workspace = me.workspace;
    sessionStorage.setItem(TOKEN_KEY, token);
    setText("workspace-name", me.workspace);
    show("session", true);
  }

  function signOut(message) {
    stopTimer();
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.workspace = null;
    state.connectors = [];
    $("connector-rows").replaceChildren();
    $("log-rows").replaceChildren();
    $("blocked-rows").replaceChildren();
    $("runs-rows").replaceChildren();
    $("run-timeline").replaceChildren();
    $("run-logs").replaceChildren();
    setText("run-input", "");
    setText("run-output", "");
    closeDialog($("connector-dialog"));
    closeDialog($("confirm-dialog"));
    show("session", false);
    setText("signin-error", message || "");
    if (location.hash && location.hash !== "#/") history.replaceState(null, "", "#/");
    showView("signin");
    $("token").focus();
  }

  // ---------- views ----------

  function showView(name) {
    state.view = name;
    show("view-signin", name === "signin");
    show("view-list", name === "list");
    show("view-detail", name === "detail");
    show("view-runs", name === "runs");
    show("view-run", name === "run");
    show("nav", name !== "signin");
    const inRuns = name === "runs" || name === "run";
    $("nav-runs").toggleAttribute("aria-current", inRuns);
    $("nav-connectors").toggleAttribute("aria-current", !inRuns && name !== "signin");
    document.body.dataset.view = name;
  }

  function route() {
    if (!state.token) {
      showView("signin");
      return;
    }
    // In-page anchors (the skip link) are not routes.
    if (location.hash && !location.hash.startsWith("#/") && state.view && state.view !== "signin") return;
    const r = /^#\/runs(?:\/(.+))?$/.exec(location.hash);
    if (r) {
      stopTimer();
      if (r[1]) {
        let id;
        try {
          id = decodeURIComponent(r[1]);
        } catch (_e) {
          id = r[1];
        }
        openRun(id);
      } else {
        openRuns();
      }
      return;
    }
    const m = /^#\/connectors\/(.+)$/.exec(location.hash);
    if (m) {
      let name;
      try {
        name = decodeURIComponent(m[1]);
      } catch (_e) {
        name = m[1];
      }
      openDetail(name);
    } else {
      openList();
    }
  }

  function stopTimer() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  function startTimer() {
    stopTimer();
    state.timer = setInterval(() => {
      if (state.view === "list" && !document.hidden && !$("connector-dialog").open) loadList();
    }, REFRESH_MS);
  }

  // ---------- connectors list ----------

  async function openList() {
    state.current = null;
    showView("list");
    document.title = "Connectors · codestep";
    startTimer();
    await loadList();
  }

  async function loadList() {
    const seq = ++state.loadSeq;
    setText("list-error", "");
    try {
      const [list, blocked] = await Promise.all([
        api("GET", wsPath("/connectors")),
        api("GET", wsPath("/blocked?limit=" + (state.blockedOpen ? PAGE : 1))),
      ]);
      if (seq !== state.loadSeq || state.view !== "list") return;
      state.connectors = (list && Array.isArray(list.items)) ? list.items : [];
      renderConnectors();
      renderBlockedCount(blocked);
      if (state.blockedOpen) renderBlocked(blocked, false);
      setText("list-updated", "Updated " + new Date().toLocaleTimeString("en-GB"));
    } catch (e) {
      if (seq !== state.loadSeq) return;
      if (e.status !== 401) setText("list-error", e.message);
    }
  }

  function renderConnectors() {
    const rows = state.connectors
      .slice()
      .sort((a, b) => String(a.name).localeCompare(String(b.name)))
      .map((c) => {
        const stats = c.stats || {};
        const alert = hasAlert(stats);
        const health = healthOf(stats);
        const link = h("a", {
          href: "#/connectors/" + encodeURIComponent(c.name),
          class: "name-link",
          "data-testid": "connector-link",
          text: c.name,
        });
        const patterns = h("ul", { class: "patterns" },
          ...(Array.isArray(c.patterns) ? c.patterns : []).map((p) => h("li", {}, h("code", { text: p }))));
        const rate = typeof stats.error_rate_24h === "number" && stats.requests_24h
          ? h("span", { class: "muted small rate", "data-testid": "error-rate", text: " (" + (stats.error_rate_24h * 100).toFixed(1) + " %)" })
          : null;
        const lastError = stats.last_error_at
          ? h("time", { datetime: stats.last_error_at, "data-testid": "last-error", text: fmtTime(stats.last_error_at) })
          : h("span", { class: "muted", "data-testid": "last-error", text: "never" });
        return h("tr", { "data-testid": "connector-row", "data-name": c.name, "data-health": health, class: alert ? "has-alert health-" + health : "" },
          h("th", { scope: "row", "data-label": "Name" }, link),
          h("td", { "data-label": "Patterns" }, patterns),
          h("td", { "data-label": "Placement" }, h("code", { "data-testid": "placement", text: placementText(c.placement) })),
          h("td", { class: "num", "data-label": "Requests 24 h", "data-testid": "requests-24h", text: fmtNumber(stats.requests_24h) }),
          h("td", { class: "num" + (errorCount(c) > 0 ? " bad" : ""), "data-label": "Errors 24 h" },
            h("span", {}, h("span", { "data-testid": "errors-24h", text: fmtNumber(stats.errors_24h) }), rate)),
          h("td", { class: "nowrap", "data-label": "Last error" }, lastError),
          h("td", { "data-label": "Health" }, healthBadge(stats)));
      });
    $("connector-rows").replaceChildren(...rows);
    show("connectors-empty", rows.length === 0);
  }

  function renderBlockedCount(blocked) {
    const n = blocked && typeof blocked.count_24h === "number" ? blocked.count_24h : null;
    setText("blocked-count", n === null ? "–" : fmtNumber(n));
    setText("blocked-noun", n === 1 ? "request" : "requests");
    $("blocked-count").classList.toggle("bad", !!n);
  }

  async function toggleBlocked() {
    state.blockedOpen = !state.blockedOpen;
    $("blocked-toggle").setAttribute("aria-expanded", String(state.blockedOpen));
    setText("blocked-toggle", state.blockedOpen ? "Hide blocked requests" : "Show blocked requests");
    show("blocked-panel", state.blockedOpen);
    if (state.blockedOpen) await loadBlocked(false);
  }

  async function loadBlocked(more) {
    let q = "/blocked?limit=" + PAGE;
    if (more && state.blockedCursor) q += "&before=" + encodeURIComponent(state.blockedCursor);
    try {
      const data = await api("GET", wsPath(q));
      renderBlockedCount(data);
      renderBlocked(data, more);
    } catch (e) {
      if (e.status !== 401) setText("list-error", e.message);
    }
  }

  function renderBlocked(data, append) {
    const items = data && Array.isArray(data.items) ? data.items : [];
    const rows = items.map((b) =>
      h("tr", { "data-testid": "blocked-row" },
        timeCell(b.timestamp),
        h("td", { text: b.method || "" }),
        h("td", { text: b.host || "" }),
        h("td", { class: "path" }, h("code", { text: b.path || "" })),
        h("td", { class: "run" }, runLink(b.run_id))));
    if (append) $("blocked-rows").append(...rows);
    else $("blocked-rows").replaceChildren(...rows);
    state.blockedCursor = data ? data.next || null : null;
    show("blocked-more", !!state.blockedCursor);
    show("blocked-empty", $("blocked-rows").children.length === 0);
  }

  function shortId(id) {
    if (!id) return "";
    const s = String(id);
    return s.length > 12 ? s.slice(0, 8) + "…" : s;
  }

  // ---------- connector detail ----------

  async function openDetail(name) {
    stopTimer();
    const changed = state.current !== name;
    state.current = name;
    showView("detail");
    document.title = name + " · codestep";
    setText("detail-name", name);
    setText("detail-error", "");
    if (changed) {
      setText("detail-status", "");
      $("log-filters").reset();
      state.logFilters = {};
      $("log-rows").replaceChildren();
      $("chart").replaceChildren();
      $("detail-patterns").replaceChildren();
      setText("detail-placement", "");
      setText("detail-updated", "");
      setText("detail-scrub", "");
      setText("detail-requests", "–");
      setText("detail-errors", "–");
      show("detail-alert", false);
    }
    await loadDetail();
  }

  async function loadDetail() {
    const name = state.current;
    try {
      const list = await api("GET", wsPath("/connectors"));
      if (state.current !== name) return;
      state.connectors = (list && Array.isArray(list.items)) ? list.items : [];
      const c = state.connectors.find((x) => x.name === name);
      if (!c) {
        setText("detail-error", "There is no connector named \u201c" + name + "\u201d in this workspace.");
        return;
      }
      renderConfig(c);
    } catch (e) {
      if (e.status !== 401) setText("detail-error", e.message);
      return;
    }
    await Promise.all([loadStats(), loadLog(false)]);
  }

  function renderConfig(c) {
    $("detail-patterns").replaceChildren(
      ...(Array.isArray(c.patterns) ? c.patterns : []).map((p) => h("li", {}, h("code", { text: p }))));
    setText("detail-placement", placementText(c.placement));
    setText("detail-scrub", c.scrub_echo ? "On" : "Off");
    $("detail-updated").replaceChildren(h("time", { datetime: c.updated_at || "", text: fmtTime(c.updated_at) + " UTC" }));
  }

  async function loadStats() {
    const name = state.current;
    try {
      const s = await api("GET", connectorPath(name, "/stats"));
      if (state.current !== name) return;
      setText("detail-requests", fmtNumber(s.requests_24h));
      setText("detail-errors", fmtNumber(s.errors_24h));
      const health = healthOf(s);
      setText("detail-alert", HEALTH_TEXT[health] || health);
      $("detail-alert").dataset.health = health;
      $("detail-alert").className = "badge badge-alert badge-" + health;
      show("detail-alert", hasAlert(s));
      renderChart(Array.isArray(s.series) ? s.series : []);
    } catch (e) {
      if (e.status !== 401) setText("detail-error", e.message);
    }
  }

  function renderChart(series) {
    const W = 480, H = 150, top = 10, bottom = 22, left = 30, right = 6;
    const plotH = H - top - bottom;
    const plotW = W - left - right;
    const n = Math.max(series.length, 1);
    const slot = plotW / n;
    const max = Math.max(1, ...series.map((b) => Math.max(b.requests || 0, b.errors || 0)));
    const y = (v) => top + plotH - (v / max) * plotH;
    const totalReq = series.reduce((a, b) => a + (b.requests || 0), 0);
    const totalErr = series.reduce((a, b) => a + (b.errors || 0), 0);

    const root = svg("svg", {
      viewBox: "0 0 " + W + " " + H,
      width: "100%",
      role: "img",
      "aria-label": "Requests and errors per hour over the last 24 hours: " + totalReq + " requests, " + totalErr + " errors",
      "data-testid": "chart-svg",
      preserveAspectRatio: "xMidYMid meet",
    });
    // Grid: baseline, top line and max label.
    root.append(
      svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "axis" }),
      svg("line", { x1: left, x2: W - right, y1: top, y2: top, class: "grid" }),
      svg("line", { x1: left, x2: W - right, y1: top + plotH / 2, y2: top + plotH / 2, class: "grid" }));
    const maxLabel = svg("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" });
    maxLabel.textContent = String(max);
    const zeroLabel = svg("text", { x: left - 4, y: top + plotH + 4, class: "tick", "text-anchor": "end" });
    zeroLabel.textContent = "0";
    root.append(maxLabel, zeroLabel);

    const barW = Math.max(1, (slot - 2) / 2);
    series.forEach((b, i) => {
      const req = b.requests || 0;
      const err = b.errors || 0;
      const x0 = left + i * slot + 1;
      const g = svg("g", { class: "bucket", "data-requests": req, "data-errors": err });
      const title = svg("title", {});
      title.textContent = fmtHour(b.start) + " UTC: " + req + " requests, " + err + " errors";
      g.append(title);
      // A hit area over the whole slot so the tooltip is easy to reach.
      g.append(svg("rect", { x: x0 - 1, y: top, width: slot, height: plotH, class: "hit" }));
      // A non-zero bucket is never drawn thinner than 2 px, so a single error stays visible.
      const barH = (v) => (v > 0 ? Math.max(2, top + plotH - y(v)) : 0);
      g.append(svg("rect", { x: x0, y: top + plotH - barH(req), width: barW, height: barH(req), class: "bar-req" }));
      g.append(svg("rect", { x: x0 + barW, y: top + plotH - barH(err), width: barW, height: barH(err), class: "bar-err" }));
      root.append(g);
      if (i % 6 === 0 || i === series.length - 1) {
        const t = svg("text", { x: x0 + barW, y: H - 6, class: "tick", "text-anchor": "middle" });
        t.textContent = fmtHour(b.start);
        root.append(t);
      }
    });
    if (series.length === 0) {
      const t = svg("text", { x: W / 2, y: H / 2, class: "tick", "text-anchor": "middle" });
      t.textContent = "No data";
      root.append(t);
    }
    $("chart").replaceChildren(root);
  }

  /** "2026-11-25T14:00" or "...:05" from a datetime-local input, read as UTC → RFC 3339. */
  function localInputToRfc3339(v) {
    if (!v) return null;
    const withSeconds = /T\d{2}:\d{2}$/.test(v) ? v + ":00" : v;
    const d = new Date(withSeconds + "Z");
    return isNaN(d.getTime()) ? null : d.toISOString().replace(/\.000Z$/, "Z");
  }

  function readFilters() {
    const f = {};
    const outcome = $("filter-outcome").value;
    if (outcome) f.outcome = outcome;
    const since = localInputToRfc3339($("filter-since").value);
    const until = localInputToRfc3339($("filter-until").value);
    if ($("filter-since").value && !since) throw new Error("“Since” is not a valid time.");
    if ($("filter-until").value && !until) throw new Error("“Until” is not a valid time.");
    if (since) f.since = since;
    if (until) f.until = until;
    if (since && until && since > until) throw new Error("“Since” must be before “Until”.");
    return f;
  }

  async function loadLog(more) {
    const name = state.current;
    const params = new URLSearchParams({ limit: String(PAGE) });
    for (const [k, v] of Object.entries(state.logFilters)) params.set(k, v);
    if (more && state.logCursor) params.set("before", state.logCursor);
    setText("log-error", "");
    $("log-more").disabled = true;
    try {
      const data = await api("GET", connectorPath(name, "/errors?" + params.toString()));
      if (state.current !== name) return;
      const items = data && Array.isArray(data.items) ? data.items : [];
      const rows = items.map((e) =>
        h("tr", { "data-testid": "error-row", "data-outcome": e.outcome || "" },
          timeCell(e.timestamp),
          h("td", { class: "num", "data-testid": "error-status", text: e.status == null ? "—" : e.status }),
          h("td", { "data-testid": "error-method", text: e.method || "" }),
          h("td", { "data-testid": "error-host", text: e.host || "" }),
          h("td", { class: "path", "data-testid": "error-path" }, h("code", { text: e.path || "" })),
          h("td", { "data-testid": "error-outcome" }, h("span", { class: "outcome outcome-" + safeClass(e.outcome), text: e.outcome || "" })),
          h("td", { class: "said" },
            e.status_text ? h("strong", { "data-testid": "error-status-text", text: e.status_text }) : null,
            e.error_excerpt ? h("code", { class: "excerpt", "data-testid": "error-excerpt", text: e.error_excerpt }) : null),
          h("td", { class: "num nowrap", text: typeof e.duration_ms === "number" ? e.duration_ms.toFixed(1) + " ms" : "" }),
          h("td", { class: "run" }, runLink(e.run_id))));
      if (more) $("log-rows").append(...rows);
      else $("log-rows").replaceChildren(...rows);
      state.logCursor = data ? data.next || null : null;
      show("log-more", !!state.logCursor);
      show("log-empty", $("log-rows").children.length === 0);
    } catch (e) {
      if (e.status !== 401) setText("log-error", e.message);
    } finally {
      $("log-more").disabled = false;
    }
  }

  function safeClass(s) {
    return String(s || "").replace(/[^a-z_]/g, "");
  }

  // ---------- runs ----------

  function fmtDuration(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) return "";
    return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(1) + " ms";
  }

  function outcomeBadge(outcome, testid) {
    const o = String(outcome || "");
    return h("span", { class: "outcome outcome-run-" + safeClass(o), "data-testid": testid || null, text: o });
  }

  async function openRuns() {
    state.currentRun = null;
    showView("runs");
    document.title = "Runs · codestep";
    await loadRuns(false);
  }

  async function loadRuns(older) {
    const seq = ++state.runsSeq;
    const params = new URLSearchParams({ limit: String(PAGE) });
    const outcome = $("runs-outcome").value;
    if (outcome) params.set("outcome", outcome);
    if (older && state.runsCursor) params.set("before", state.runsCursor);
    setText("runs-error", "");
    $("runs-older").disabled = true;
    try {
      const data = await api("GET", wsPath("/runs?" + params.toString()));
      if (seq !== state.runsSeq || state.view !== "runs") return;
      const items = data && Array.isArray(data.items) ? data.items : [];
      const rows = items.map((r) =>
        h("tr", { "data-testid": "run-row", "data-outcome": r.outcome || "", "data-id": r.id || "" },
          h("td", { class: "nowrap", "data-label": "Started" }, h("time", { datetime: r.started_at || "", text: fmtTime(r.started_at) })),
          h("td", { "data-label": "Outcome" }, outcomeBadge(r.outcome, "run-row-outcome")),
          h("td", { class: "num nowrap", "data-label": "Duration", "data-testid": "run-row-duration", text: fmtDuration(r.duration_ms) }),
          h("td", { class: "num", "data-label": "Fetches", "data-testid": "run-row-fetches", text: fmtNumber(r.fetches) }),
          h("td", { "data-label": "Who", text: r.token || "" }),
          h("td", { class: "run", "data-label": "Run" }, runLink(r.id))));
      if (older) $("runs-rows").append(...rows);
      else $("runs-rows").replaceChildren(...rows);
      state.runsCursor = data ? data.next || null : null;
      show("runs-older", !!state.runsCursor);
      show("runs-empty", $("runs-rows").children.length === 0);
    } catch (e) {
      if (seq === state.runsSeq && e.status !== 401) setText("runs-error", e.message);
    } finally {
      $("runs-older").disabled = false;
    }
  }

  async function openRun(id) {
    state.currentRun = id;
    showView("run");
    document.title = "Run " + shortId(id) + " · codestep";
    setText("run-id", id);
    setText("run-load-error", "");
    for (const el of ["run-timeline", "run-logs", "run-outcome"]) $(el).replaceChildren();
    show("run-error", false);
    try {
      const run = await api("GET", wsPath("/runs/" + encodeURIComponent(id)));
      if (state.currentRun !== id || state.view !== "run") return;
      renderRun(run);
    } catch (e) {
      if (e.status !== 401) setText("run-load-error", e.status === 404 ? "There is no run " + id + " in this workspace." : e.message);
    }
  }

  function renderRun(run) {
    $("run-outcome").replaceChildren(outcomeBadge(run.outcome));
    $("run-started").replaceChildren(h("time", { datetime: run.started_at || "", text: fmtTime(run.started_at) + " UTC" }));
    setText("run-duration", fmtDuration(run.duration_ms));
    setText("run-fetches", fmtNumber(run.fetches));
    setText("run-token", run.token || "");
    setText("run-step", run.step_hash ? String(run.step_hash).slice(0, 16) + "…" : "");
    $("run-step").title = run.step_hash || "";
    if (run.error_message) {
      $("run-error").replaceChildren(h("strong", { text: (run.outcome || "error") + ": " }), run.error_message);
      show("run-error", true);
    }
    show("run-io", !!run.io_kept);
    show("run-io-off", !run.io_kept);
    setText("run-input", run.io_kept ? JSON.stringify(run.input, null, 2) : "");
    setText("run-output", run.io_kept ? (run.output === null || run.output === undefined ? "(none)" : JSON.stringify(run.output, null, 2)) : "");

    // Requests on one time axis: each bar starts when its request did and lasts as long.
    const reqs = Array.isArray(run.requests) ? run.requests : [];
    const t0 = reqs.length ? Math.min(...reqs.map((r) => r.at_ms || 0)) : 0;
    const end = Math.max(run.duration_ms || 0, ...reqs.map((r) => (r.at_ms || 0) - t0 + (r.duration_ms || 0)), 1);
    const pct = (v) => Math.max(0, Math.min(100, (v / end) * 100));
    $("run-timeline").replaceChildren(...reqs.map((r) => {
      const failed = r.outcome && r.outcome !== "ok";
      const left = pct((r.at_ms || 0) - t0);
      const width = Math.max(0.8, Math.min(100 - left, pct(r.duration_ms || 0)));
      const status = r.status != null ? String(r.status) : (r.blocked ? "blocked" : (r.error || "failed"));
      // Through the CSSOM: the page's policy allows no inline style attributes.
      const bar = h("div", { class: "bar", "data-testid": "run-request-bar" });
      bar.style.marginLeft = left.toFixed(2) + "%";
      bar.style.width = width.toFixed(2) + "%";
      return h("li", { class: "req" + (failed ? " req-failed" : ""), "data-testid": "run-request", "data-outcome": r.outcome || "" },
        h("div", { class: "req-head" },
          h("span", { class: "req-status", "data-testid": "run-request-status", text: status + (r.status_text ? " " + r.status_text : "") }),
          h("code", { class: "req-what", text: (r.method || "") + " " + (r.host || "") + (r.path || "") }),
          h("span", { class: "muted small nowrap", text: fmtDuration(r.duration_ms) + (r.connector ? " · " + r.connector : "") })),
        h("div", { class: "bar-track", "aria-hidden": "true" }, bar),
        r.error_excerpt ? h("code", { class: "excerpt", "data-testid": "run-request-excerpt", text: r.error_excerpt }) : null);
    }));
    show("run-timeline-empty", reqs.length === 0);

    const logs = Array.isArray(run.logs) ? run.logs : [];
    $("run-logs").replaceChildren(...logs.map((l) =>
      h("li", { class: "log log-" + safeClass(l.level), "data-testid": "run-log" },
        h("span", { class: "log-level", text: l.level || "log" }),
        h("time", { class: "muted small", text: typeof l.time === "number" ? fmtTime(new Date(l.time).toISOString()) : "" }),
        h("span", { class: "log-message", text: l.message || "" }))));
    show("run-logs-empty", logs.length === 0);
    show("run-logs-dropped", !!run.logs_dropped);
    setText("run-logs-dropped", run.logs_dropped ? run.logs_dropped + " more messages were dropped (the log was full)." : "");
  }

  // ---------- add / edit form ----------

  const FIELD_INPUTS = {
    name: "f-name",
    preset: "f-kind",
    patterns: "f-patterns",
    "placement.name": "f-header-name",
    "placement.header": "f-header-name",
    "placement.template": "f-template",
    "placement.param": "f-param",
    placement: "f-placement",
    secret: "f-secret",
  };

  /** Maps an API error field ("patterns[0]", "placement.template", …) to the id of the input it concerns. */
  function fieldTarget(field) {
    if (!field) return null;
    if (FIELD_INPUTS[field]) return FIELD_INPUTS[field];
    if (/^patterns(\[|\.|$)/.test(field)) return "f-patterns";
    if (/^placement\./.test(field)) return "f-placement";
    return null;
  }

  function clearFormErrors() {
    state.formErrors.clear();
    renderFormErrors();
  }

  /** Shows every problem of the form at once: each next to its field, and all in the summary. */
  function renderFormErrors() {
    for (const node of document.querySelectorAll("#connector-form .field-error")) {
      const e = state.formErrors.get(node.id.replace(/-error$/, ""));
      node.textContent = e ? e.message : "";
    }
    for (const node of document.querySelectorAll("#connector-form [aria-invalid]")) node.removeAttribute("aria-invalid");
    for (const target of state.formErrors.keys()) {
      const input = $(target);
      if (input && input.tagName !== "FIELDSET") input.setAttribute("aria-invalid", "true");
    }
    const all = [...state.formErrors.values()].map((e) => e.summary);
    setText("form-error", all.length <= 1 ? all.join("") : all.length + " problems: " + all.join("; "));
  }

  /** Records a problem (from the checks below or from the server) under the input it concerns. */
  function addFieldError(field, message) {
    const target = fieldTarget(field) || "form";
    const summary = field && !String(message).includes(field) ? field + ": " + message : message;
    state.formErrors.set(target, { field, message, summary });
  }

  function focusFirstError() {
    for (const target of state.formErrors.keys()) {
      const input = $(target);
      if (input && !input.hidden && !input.closest("[hidden]") && input.tagName !== "FIELDSET") {
        input.focus();
        return;
      }
    }
  }

  /** The inputs the form uses as it is now (others are hidden). */
  function activeInputs() {
    const isAdd = state.formMode === "add";
    const out = [];
    if (isAdd) out.push("f-name");
    if (!isAdd || kind() !== "stripe") {
      out.push("f-patterns");
      if (placementKind() === "query") out.push("f-param");
      else out.push("f-header-name", "f-template");
    }
    out.push("f-secret");
    return out;
  }

  const FIELD_OF = {
    "f-name": "name",
    "f-patterns": "patterns",
    "f-header-name": "placement.name",
    "f-template": "placement.template",
    "f-param": "placement.param",
    "f-secret": "secret",
  };

  /** The client-side check of one input: a message, or null when it is fine. */
  function checkInput(id) {
    switch (id) {
      case "f-name": {
        const v = $("f-name").value.trim();
        if (!v) return "a name is required";
        if (!/^[A-Za-z0-9_-]+$/.test(v)) return "use only letters, digits, - and _";
        if (v.length > 64) return "at most 64 characters";
        return null;
      }
      case "f-patterns": {
        const n = readPatterns().length;
        if (n === 0) return "at least one pattern is required";
        if (n > 20) return "at most 20 patterns";
        return null;
      }
      case "f-header-name": {
        const v = $("f-header-name").value.trim();
        if (!v) return "a header name is required";
        if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v)) return "not a valid header name";
        return null;
      }
      case "f-template":
        return $("f-template").value.includes("{{secret}}") ? null : "the template must contain {{secret}}";
      case "f-param":
        return $("f-param").value.trim() ? null : "a parameter name is required";
      case "f-secret":
        if ($("f-secret").value) return null;
        return state.formMode === "add" ? "a secret is required" : "changing where the secret goes needs the secret again";
      default:
        return null;
    }
  }

  /** After an edit: an input whose problem is fixed loses its error; errors of hidden inputs go. */
  function recheckForm(ev) {
    const active = activeInputs();
    for (const target of [...state.formErrors.keys()]) {
      if (target !== "form" && !active.includes(target) && target !== "f-placement" && target !== "f-kind") {
        state.formErrors.delete(target);
      }
    }
    const id = ev && ev.target ? ev.target.id : "";
    if (id && state.formErrors.has(id)) {
      const problem = checkInput(id);
      if (problem) addFieldError(FIELD_OF[id], problem);
      else state.formErrors.delete(id);
    }
    // A problem of the whole form, or of a group (placement, kind), is stale once anything changed.
    if (ev && ev.target && ev.target.name === "placement") state.formErrors.delete("f-placement");
    if (ev && ev.target && ev.target.name === "kind") state.formErrors.delete("f-kind");
    state.formErrors.delete("form");
    renderFormErrors();
  }

  function kind() {
    const checked = document.querySelector('#connector-form input[name="kind"]:checked');
    return checked ? checked.value : "custom";
  }

  function placementKind() {
    const checked = document.querySelector('#connector-form input[name="placement"]:checked');
    return checked ? checked.value : "header";
  }

  function syncFormVisibility() {
    const isPreset = state.formMode === "add" && kind() === "stripe";
    show("f-custom", !isPreset);
    show("f-preset-note", isPreset);
    const isHeader = placementKind() === "header";
    show("f-header-fields", isHeader);
    show("f-query-fields", !isHeader);
  }

  function setRadio(name, value) {
    for (const r of document.querySelectorAll('#connector-form input[name="' + name + '"]')) r.checked = r.value === value;
  }

  function openForm(mode, connector) {
    const form = $("connector-form");
    form.reset();
    clearFormErrors();
    state.formMode = mode;
    state.editing = connector ? connector.name : null;
    const isAdd = mode === "add";
    setText("form-title", isAdd ? "Add connector" : "Edit connector " + connector.name);
    setText("form-submit", isAdd ? "Add connector" : "Save changes");
    $("f-name").readOnly = !isAdd;
    show("f-kind-set", isAdd);
    // Changing where a secret goes needs the secret again (security model, "Who decides where a
    // secret goes"), so the edit form asks for it too.
    $("f-secret").required = true;
    setText(
      "f-secret-hint",
      isAdd
        ? "Write-only: it is never shown again."
        : "Changing where the secret goes needs the secret again. Write-only: it is never shown.",
    );
    if (!isAdd) {
      $("f-name").value = connector.name;
      setRadio("kind", "custom");
      $("f-patterns").value = (connector.patterns || []).join("\n");
      const p = connector.placement || {};
      if (p.type === "query") {
        setRadio("placement", "query");
        $("f-param").value = p.param || "";
      } else {
        setRadio("placement", "header");
        $("f-header-name").value = p.name || "";
        $("f-template").value = p.template || "";
      }
      $("f-scrub").checked = !!connector.scrub_echo;
    }
    syncFormVisibility();
    const dlg = $("connector-dialog");
    if (!dlg.open) dlg.showModal();
    (isAdd ? $("f-name") : $("f-patterns")).focus();
  }

  function closeDialog(dlg) {
    if (dlg.open) dlg.close();
  }

  function readPatterns() {
    return $("f-patterns").value
      .split("\n")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }

  function readPlacement() {
    if (placementKind() === "query") return { type: "query", param: $("f-param").value.trim() };
    return { type: "header", name: $("f-header-name").value.trim(), template: $("f-template").value };
  }

  async function submitForm(ev) {
    ev.preventDefault();
    clearFormErrors();
    const secretInput = $("f-secret");
    const secret = secretInput.value;
    // The secret leaves the input now, whatever happens next.
    secretInput.value = "";
    const isAdd = state.formMode === "add";
    const name = $("f-name").value.trim();
    // Every problem at once, not the first one only.
    for (const id of activeInputs()) {
      const problem = id === "f-secret" ? (secret ? null : checkInput(id)) : checkInput(id);
      if (problem) addFieldError(FIELD_OF[id], problem);
    }
    if (state.formErrors.size > 0) {
      renderFormErrors();
      focusFirstError();
      return;
    }
    let body;
    if (isAdd) {
      if (kind() === "stripe") {
        body = { name, preset: "stripe", secret };
      } else {
        body = { name, patterns: readPatterns(), placement: readPlacement(), secret, scrub_echo: $("f-scrub").checked };
      }
    } else {
      body = { patterns: readPatterns(), placement: readPlacement(), scrub_echo: $("f-scrub").checked, secret };
    }
    const submit = $("form-submit");
    submit.disabled = true;
    try {
      const saved = isAdd
        ? await api("POST", wsPath("/connectors"), body)
        : await api("PATCH", connectorPath(state.editing, ""), body);
      body = null;
      closeDialog($("connector-dialog"));
      const savedName = (saved && saved.name) || name || state.editing;
      if (isAdd) {
        setText("list-status", "Connector \u201c" + savedName + "\u201d added.");
        if (state.view === "list") await loadList();
        else location.hash = "#/";
      } else {
        setText("detail-status", "Connector \u201c" + savedName + "\u201d saved.");
        if (saved) renderConfig(saved);
        if (state.view === "detail") await loadDetail();
      }
    } catch (e) {
      body = null;
      if (e.status === 401) return;
      addFieldError(e.field, e.message);
      renderFormErrors();
      focusFirstError();
    } finally {
      submit.disabled = false;
    }
  }

  // ---------- rotate / delete ----------

  async function submitRotate(ev) {
    ev.preventDefault();
    const input = $("rotate-secret");
    const secret = input.value;
    input.value = "";
    setText("rotate-error", "");
    setText("detail-status", "");
    input.removeAttribute("aria-invalid");
    if (!secret) {
      input.setAttribute("aria-invalid", "true");
      setText("rotate-error", "secret: enter the new secret");
      input.focus();
      return;
    }
    try {
      const saved = await api("PATCH", connectorPath(state.current, ""), { secret });
      setText("detail-status", "Secret rotated. Steps use the new secret from now on.");
      if (saved) renderConfig(saved);
    } catch (e) {
      if (e.status === 401) return;
      input.setAttribute("aria-invalid", "true");
      setText("rotate-error", (e.field ? e.field + ": " : "") + e.message);
    }
  }

  function confirmDelete(name) {
    return new Promise((resolve) => {
      const dlg = $("confirm-dialog");
      setText("confirm-name", name);
      dlg.returnValue = "cancel";
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "delete"), { once: true });
      dlg.showModal();
    });
  }

  async function deleteCurrent() {
    const name = state.current;
    if (!name) return;
    if (!(await confirmDelete(name))) return;
    try {
      await api("DELETE", connectorPath(name, ""));
      setText("list-status", "Connector \u201c" + name + "\u201d deleted.");
      state.current = null;
      location.hash = "#/";
    } catch (e) {
      if (e.status !== 401) setText("detail-error", e.message);
    }
  }

  // ---------- wiring ----------

  function init() {
    $("signin-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = $("token");
      const token = input.value.trim();
      setText("signin-error", "");
      if (!token) {
        setText("signin-error", "Enter a workspace token.");
        input.focus();
        return;
      }
      const btn = ev.submitter || null;
      if (btn) btn.disabled = true;
      try {
        await signIn(token);
        input.value = "";
        route();
      } catch (e) {
        setText("signin-error", e.status === 401 || e.status === 403
          ? "That token was not accepted."
          : e.message);
        input.focus();
      } finally {
        if (btn) btn.disabled = false;
      }
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    $("refresh").addEventListener("click", () => loadList());
    $("detail-refresh").addEventListener("click", () => loadDetail());
    $("add-connector").addEventListener("click", () => {
      setText("list-status", "");
      openForm("add", null);
    });
    $("edit-connector").addEventListener("click", () => {
      const c = state.connectors.find((x) => x.name === state.current);
      if (c) {
        setText("detail-status", "");
        openForm("edit", c);
      }
    });
    $("delete-connector").addEventListener("click", deleteCurrent);
    $("blocked-toggle").addEventListener("click", toggleBlocked);
    $("blocked-more").addEventListener("click", () => loadBlocked(true));
    $("log-more").addEventListener("click", () => loadLog(true));
    $("log-filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      try {
        state.logFilters = readFilters();
      } catch (e) {
        setText("log-error", e.message);
        return;
      }
      loadLog(false);
    });
    $("log-filters").addEventListener("reset", () => {
      state.logFilters = {};
      // The reset clears the inputs after this event: load once they are empty.
      setTimeout(() => loadLog(false), 0);
    });
    $("connector-form").addEventListener("submit", submitForm);
    $("connector-form").addEventListener("change", (ev) => {
      if (ev.target && (ev.target.name === "kind" || ev.target.name === "placement")) syncFormVisibility();
      recheckForm(ev);
    });
    $("connector-form").addEventListener("input", recheckForm);
    $("runs-outcome").addEventListener("change", () => loadRuns(false));
    $("runs-refresh").addEventListener("click", () => loadRuns(false));
    $("runs-older").addEventListener("click", () => loadRuns(true));
    $("form-cancel").addEventListener("click", () => closeDialog($("connector-dialog")));
    $("connector-dialog").addEventListener("close", () => {
      $("f-secret").value = "";
      clearFormErrors();
    });
    $("rotate-form").addEventListener("submit", submitRotate);
    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.view === "list") loadList();
    });

    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (!saved) {
      showView("signin");
      $("token").focus();
      return;
    }
    signIn(saved)
      .then(route)
      .catch((e) => signOut(e.status === 401 ? "Your session has ended. Sign in again." : e.message));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
