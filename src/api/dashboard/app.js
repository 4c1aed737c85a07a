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
    // What the signed-in token may do: "run", "read", "manage" (the server enforces it anyway).
    scopes: new Set(),
    label: null,
    presets: null,
    secretLabels: {},
    formSecretNames: null,
    placementKind: null,
    editOriginal: null,
    auditCursor: null,
    auditSeq: 0,
    testFor: null,
    tokenProblems: {},
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
    // Runs need the run scope: without it, the id alone.
    if (!can("run")) return h("code", { title: id, text: shortId(id) });
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
    state.label = me.label || null;
    state.scopes = new Set(Array.isArray(me.scopes) ? me.scopes : ["run", "read", "manage"]);
    sessionStorage.setItem(TOKEN_KEY, token);
    setText("workspace-name", me.workspace);
    $("workspace-name").title = (me.label ? "Signed in as “" + me.label + "”: " : "") + [...state.scopes].join(", ");
    document.body.dataset.scopes = [...state.scopes].sort().join(" ");
    applyScopes();
    show("session", true);
    if (can("manage")) await loadPresets();
  }

  function can(scope) {
    return state.scopes.has(scope);
  }

  /** Shows only what the token may do. A convenience: the server refuses the rest anyway. */
  function applyScopes() {
    for (const el of document.querySelectorAll("[data-needs]")) el.hidden = !can(el.dataset.needs);
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
    $("token-rows").replaceChildren();
    $("audit-rows").replaceChildren();
    hideNewToken();
    resetTest();
    clearSecrets($("rotate-secrets"));
    clearSecrets($("f-secrets"));
    state.scopes = new Set();
    state.presets = null;
    applyScopes();
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
    show("view-tokens", name === "tokens");
    show("view-audit", name === "audit");
    show("nav", name !== "signin");
    const section = name === "run" ? "runs" : name === "detail" ? "list" : name;
    $("nav-runs").toggleAttribute("aria-current", section === "runs");
    $("nav-connectors").toggleAttribute("aria-current", section === "list");
    $("nav-audit").toggleAttribute("aria-current", section === "audit");
    $("nav-tokens").toggleAttribute("aria-current", section === "tokens");
    // A new token is shown once: leaving the page forgets it.
    if (name !== "tokens") hideNewToken();
    document.body.dataset.view = name;
  }

  function route() {
    if (!state.token) {
      showView("signin");
      return;
    }
    // In-page anchors (the skip link) are not routes.
    if (location.hash && !location.hash.startsWith("#/") && state.view && state.view !== "signin") return;
    const hash = location.hash || "#/";
    const r = /^#\/runs(?:\/(.+))?$/.exec(hash);
    const needs = r ? "run" : hash === "#/tokens" ? "manage" : "read";
    if (!can(needs)) {
      // A page this token may not see: go to one it may (the server would refuse the data anyway).
      const home = can("read") ? "#/" : can("run") ? "#/runs" : null;
      stopTimer();
      if (home && home !== hash) location.replace(home);
      else showView("signin");
      return;
    }
    if (hash === "#/tokens") {
      stopTimer();
      openTokens();
      return;
    }
    if (hash === "#/audit") {
      stopTimer();
      openAudit();
      return;
    }
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
      resetTest();
      clearSecrets($("rotate-secrets"));
      setText("rotate-error", "");
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
    renderRotate(c);
    if (state.testFor !== c.name) {
      state.testFor = c.name;
      $("test-url").value = suggestTestUrl(c);
    }
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

  // ---------- presets and secrets ----------

  /** The presets from `GET /v1/presets`, loaded once per sign-in; the Kind select offers each. */
  async function loadPresets() {
    try {
      const data = await api("GET", "/v1/presets");
      state.presets = data && Array.isArray(data.items) ? data.items : [];
    } catch (e) {
      state.presets = [];
      if (e.status === 401) throw e;
    }
    const sel = $("f-kind");
    for (const opt of [...sel.querySelectorAll("option, optgroup")]) if (opt.value !== "custom") opt.remove();
    if (state.presets.length) {
      sel.append(h("optgroup", { label: "Presets" },
        ...state.presets.map((p) => h("option", { value: p.id, "data-testid": "f-kind-" + p.id, text: p.name }))));
    }
  }

  function presetById(id) {
    return (state.presets || []).find((p) => p.id === id) || null;
  }

  function samePatterns(a, b) {
    return JSON.stringify(a || []) === JSON.stringify(b || []);
  }

  /** The preset a connector looks made from: same patterns (or, for AWS, the same placement kind). */
  function presetOfConnector(c) {
    if (!c) return null;
    return (state.presets || []).find((p) => samePatterns(p.patterns, c.patterns)) ||
      (state.presets || []).find((p) => p.placement && c.placement && p.placement.type === "aws_sigv4" &&
        c.placement.type === "aws_sigv4") || null;
  }

  const SECRET_RE = /\{\{secret(?:\.([a-z][a-z0-9_]*))?\}\}/g;
  const HAS_SECRET = /\{\{secret(?:\.[a-z][a-z0-9_]*)?\}\}/;

  function templateSecrets(t) {
    return [...String(t == null ? "" : t).matchAll(SECRET_RE)].map((m) => m[1] || "secret");
  }

  /** The names of the secrets a placement uses, sorted, each once (as the server computes them). */
  function secretNamesOf(p) {
    if (!p || typeof p !== "object") return [];
    let names = [];
    if (p.type === "aws_sigv4") names = ["access_key_id", "secret_access_key"];
    else if (p.type === "header") {
      const hs = Array.isArray(p.headers) ? p.headers : [{ name: p.name, template: p.template }];
      for (const x of hs) names.push(...templateSecrets(x && x.template));
    } else if (p.type === "basic") {
      names = templateSecrets(p.username).concat(templateSecrets(p.password === undefined ? "{{secret}}" : p.password));
    } else if (p.type === "query") names = templateSecrets(p.value === undefined ? "{{secret}}" : p.value);
    else if (p.type === "path") names = templateSecrets(p.template);
    return [...new Set(names)].sort();
  }

  /** A connector's secret names: from the API when it says, else from its placement. */
  function connectorSecretNames(c) {
    const given = c && ((c.secret && c.secret.names) || c.secret_names);
    if (Array.isArray(given) && given.length) return given.slice();
    const names = secretNamesOf(c && c.placement);
    return names.length ? names : ["secret"];
  }

  const SECRET_LABELS = { secret: "Secret", access_key_id: "Access key ID", secret_access_key: "Secret access key" };

  function labelsOfPreset(p) {
    const out = {};
    for (const s of (p && Array.isArray(p.secrets) ? p.secrets : [])) out[s.name] = s.label;
    return out;
  }

  function secretInputId(prefix, name) {
    return name === "secret" ? prefix : prefix + "-" + name;
  }

  /** One password input per secret name, in `box`; values typed so far stay when the set changes. */
  function renderSecretFields(box, prefix, names, labels) {
    const sig = names.map((n) => n + "=" + (labels[n] || "")).join("|");
    if (box.dataset.sig === sig) return;
    box.dataset.sig = sig;
    const keep = new Map([...box.querySelectorAll("input")].map((i) => [i.id, i.value]));
    box.replaceChildren(...names.map((n) => {
      const id = secretInputId(prefix, n);
      const input = h("input", {
        id, type: "password", autocomplete: "new-password", spellcheck: "false",
        "data-testid": id, "data-secret": n, "aria-describedby": id + "-error",
      });
      input.value = keep.get(id) || "";
      return h("div", { class: "field" },
        h("label", { for: id, text: labels[n] || SECRET_LABELS[n] || "Secret " + n }),
        input,
        h("span", { class: "field-error", id: id + "-error", "data-testid": id + "-error" }));
    }));
  }

  /** Reads the secrets of a box and clears the inputs at once: name → value. */
  function takeSecrets(box) {
    const out = {};
    for (const i of box.querySelectorAll("input")) {
      out[i.dataset.secret] = i.value;
      i.value = "";
    }
    return out;
  }

  function clearSecrets(box) {
    for (const i of box.querySelectorAll("input")) i.value = "";
  }

  /** `{secret}` for the one default secret, else `{secrets: {…}}`. */
  function secretsBody(vals) {
    const names = Object.keys(vals);
    if (names.length === 1 && names[0] === "secret") return { secret: vals.secret };
    return { secrets: Object.assign({}, vals) };
  }

  /** `{account_sid}` in a preset's data → the parameter's value; `{{secret}}` stays. */
  function fillParams(s, vals) {
    return String(s).replace(/\{([a-z][a-z0-9_]*)\}/g, (m, name, off, whole) => {
      if (whole[off - 1] === "{" || whole[off + m.length] === "}") return m;
      return vals[name] ? vals[name] : m;
    });
  }

  function deepMap(v, f) {
    if (typeof v === "string") return f(v);
    if (Array.isArray(v)) return v.map((x) => deepMap(x, f));
    if (v && typeof v === "object") {
      const out = {};
      for (const [k, x] of Object.entries(v)) out[k] = deepMap(x, f);
      return out;
    }
    return v;
  }

  // ---------- add / edit form ----------

  function kind() {
    return state.formMode === "add" ? $("f-kind").value || "custom" : "custom";
  }

  function currentPreset() {
    return kind() === "custom" ? null : presetById(kind());
  }

  function placementKind() {
    const checked = document.querySelector('#connector-form input[name="placement"]:checked');
    return checked ? checked.value : "header";
  }

  function setRadio(name, value) {
    for (const r of document.querySelectorAll('#connector-form input[name="' + name + '"]')) r.checked = r.value === value;
  }

  function splitList(v) {
    return String(v || "").split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0);
  }

  function headerRow(i, name, template) {
    const nid = i === 0 ? "f-header-name" : "f-header-name-" + i;
    const tid = i === 0 ? "f-template" : "f-template-" + i;
    const nameInput = h("input", { id: nid, type: "text", autocomplete: "off", spellcheck: "false", "data-testid": nid,
      "aria-describedby": nid + "-error" });
    nameInput.value = name || "";
    const tplInput = h("input", { id: tid, type: "text", autocomplete: "off", spellcheck: "false", "data-testid": tid,
      "aria-describedby": tid + "-error" });
    tplInput.value = template || "";
    return h("div", { class: "row header-row", "data-index": i },
      h("div", { class: "field" }, h("label", { for: nid, text: i === 0 ? "Header name" : "Header " + (i + 1) + " name" }), nameInput,
        h("span", { class: "field-error", id: nid + "-error", "data-testid": nid + "-error" })),
      h("div", { class: "field grow" }, h("label", { for: tid, text: "Value template" }), tplInput,
        h("span", { class: "field-error", id: tid + "-error", "data-testid": tid + "-error" })),
      i > 0 ? h("button", { type: "button", class: "btn btn-quiet remove-header", "data-testid": "f-remove-header-" + i,
        "aria-label": "Remove header " + (i + 1), text: "Remove", onclick: () => removeHeader(i) }) : null);
  }

  function setHeaders(list) {
    const rows = list.length ? list : [{ name: "", template: "" }];
    $("f-headers").replaceChildren(...rows.map((x, i) => headerRow(i, x.name, x.template)));
  }

  function readHeaders() {
    return [...$("f-headers").querySelectorAll(".header-row")].map((r) => ({
      name: r.querySelector("input[id^='f-header-name']").value.trim(),
      template: r.querySelector("input[id^='f-template']").value,
    }));
  }

  function removeHeader(i) {
    const list = readHeaders();
    list.splice(i, 1);
    setHeaders(list);
    for (const key of [...state.formErrors.keys()]) if (/^f-(header-name|template)/.test(key)) state.formErrors.delete(key);
    syncFormVisibility();
    renderFormErrors();
  }

  /** The placement the form describes, as the API's JSON (throws on a JSON placement that does not parse). */
  function readPlacement(k) {
    k = k || placementKind();
    if (k === "json") return JSON.parse($("f-placement-json").value);
    let p;
    if (k === "header") {
      const hs = readHeaders();
      p = hs.length === 1 ? { type: "header", name: hs[0].name, template: hs[0].template } : { type: "header", headers: hs };
    } else if (k === "basic") {
      p = { type: "basic", username: $("f-basic-username").value, password: $("f-basic-password").value };
    } else if (k === "query") {
      p = { type: "query", param: $("f-param").value.trim() };
    } else if (k === "path") {
      p = { type: "path", template: $("f-path-template").value };
    } else {
      p = { type: "aws_sigv4", region: $("f-aws-region").value.trim(), service: $("f-aws-service").value.trim() };
    }
    const methods = splitList($("f-methods").value).map((m) => m.toUpperCase());
    const remove = splitList($("f-remove-headers").value);
    if (methods.length) p.methods = methods;
    if (remove.length) p.remove_headers = remove;
    return p;
  }

  /** Puts a placement into the form: its own fields when it has them, else the JSON textarea. */
  function fillPlacement(p) {
    p = p || { type: "header", name: "Authorization", template: "Bearer {{secret}}" };
    setHeaders([{ name: "Authorization", template: "Bearer {{secret}}" }]);
    $("f-basic-username").value = "";
    $("f-basic-password").value = "{{secret}}";
    for (const id of ["f-param", "f-path-template", "f-aws-region", "f-aws-service", "f-placement-json", "f-methods", "f-remove-headers"]) {
      $(id).value = "";
    }
    const simple = ["header", "basic", "query", "path", "aws_sigv4"].includes(p.type) &&
      !(p.type === "query" && p.value !== undefined && p.value !== "{{secret}}");
    if (!simple) {
      setRadio("placement", "json");
      $("f-placement-json").value = JSON.stringify(p, null, 2);
      state.placementKind = "json";
      return;
    }
    setRadio("placement", p.type);
    state.placementKind = p.type;
    if (p.type === "header") setHeaders(Array.isArray(p.headers) ? p.headers : [{ name: p.name || "", template: p.template || "" }]);
    else if (p.type === "basic") {
      $("f-basic-username").value = p.username || "";
      $("f-basic-password").value = p.password === undefined ? "{{secret}}" : p.password;
    } else if (p.type === "query") $("f-param").value = p.param || "";
    else if (p.type === "path") $("f-path-template").value = p.template || "";
    else {
      $("f-aws-region").value = p.region || "";
      $("f-aws-service").value = p.service || "";
    }
    $("f-methods").value = (p.methods || []).join(", ");
    $("f-remove-headers").value = (p.remove_headers || []).join(", ");
  }

  /** The secret names the form needs now. */
  function formSecretNames() {
    const preset = currentPreset();
    if (preset) return (preset.secrets || []).map((s) => s.name);
    let names = [];
    try {
      names = secretNamesOf(readPlacement());
    } catch (_e) {
      return state.formSecretNames || ["secret"];
    }
    return names.length ? names : ["secret"];
  }

  function renderPresetInfo(p) {
    if ($("f-preset").dataset.preset === p.id) return;
    $("f-preset").dataset.preset = p.id;
    setText("f-preset-name", p.name);
    const docs = $("f-preset-docs");
    if (/^https:\/\//.test(p.docs_url || "")) {
      docs.href = p.docs_url;
      docs.hidden = false;
      setText("f-preset-docs", "How to get the key (" + new URL(p.docs_url).host + ")");
    } else {
      docs.removeAttribute("href");
      docs.hidden = true;
    }
    setText("f-preset-help", p.key_help || "");
    const pats = [];
    (p.patterns || []).forEach((x, i) => {
      if (i) pats.push(", ");
      pats.push(h("code", { text: x }));
    });
    $("f-preset-patterns").replaceChildren(...pats);
    let placement = placementText(p.placement);
    if (p.placement && Array.isArray(p.placement.remove_headers) && p.placement.remove_headers.length) {
      placement += " (drops " + p.placement.remove_headers.join(", ") + ")";
    }
    if (p.placement && Array.isArray(p.placement.methods) && p.placement.methods.length) {
      placement += " (only " + p.placement.methods.join(", ") + ")";
    }
    setText("f-preset-placement", placement);
    $("f-params").replaceChildren(...(p.params || []).map((prm) => {
      const id = "f-preset-param-" + prm.name;
      const input = h("input", { id, type: "text", autocomplete: "off", spellcheck: "false", "data-testid": id,
        "data-param": prm.name, placeholder: prm.example || "", "aria-describedby": id + "-error" });
      return h("div", { class: "field" },
        h("label", { for: id, text: prm.label + (prm.required ? "" : " (optional)") }),
        input,
        h("span", { class: "field-error", id: id + "-error", "data-testid": id + "-error" }));
    }));
  }

  function readParams() {
    const out = {};
    for (const i of $("f-params").querySelectorAll("input")) if (i.value.trim()) out[i.dataset.param] = i.value.trim();
    return out;
  }

  /** Leaves the preset for the custom fields, filled with what the preset would create. */
  function customizePreset() {
    const p = currentPreset();
    if (!p) return;
    const vals = readParams();
    const fill = (s) => fillParams(s, vals);
    state.secretLabels = labelsOfPreset(p);
    $("f-kind").value = "custom";
    $("f-patterns").value = (p.patterns || []).map(fill).join("\n");
    fillPlacement(deepMap(p.placement, fill));
    syncFormVisibility();
    recheckForm(null);
    $("f-patterns").focus();
  }

  function syncFormVisibility() {
    const isAdd = state.formMode === "add";
    const preset = currentPreset();
    show("f-kind-set", isAdd);
    show("f-custom", !preset);
    show("f-preset", !!preset);
    show("f-params", !!preset);
    if (preset) renderPresetInfo(preset);
    else {
      delete $("f-preset").dataset.preset;
      $("f-params").replaceChildren();
    }
    const k = placementKind();
    // Switching to JSON starts from what the other fields described.
    if (k === "json" && state.placementKind && state.placementKind !== "json" && !$("f-placement-json").value.trim()) {
      try {
        $("f-placement-json").value = JSON.stringify(readPlacement(state.placementKind), null, 2);
      } catch (_e) {
        // Nothing to start from.
      }
    }
    state.placementKind = k;
    show("f-header-fields", k === "header");
    show("f-basic-fields", k === "basic");
    show("f-query-fields", k === "query");
    show("f-path-fields", k === "path");
    show("f-aws-fields", k === "aws_sigv4");
    show("f-json-fields", k === "json");
    show("f-common-fields", k !== "json");
    const names = formSecretNames();
    state.formSecretNames = names;
    const labels = preset ? labelsOfPreset(preset) : (state.secretLabels || {});
    renderSecretFields($("f-secrets"), "f-secret", names, labels);
    setText("f-secrets-legend", names.length > 1 ? "Secrets" : "Secret");
  }

  /** The API field an input stands for (in summaries and messages). */
  function fieldOf(id) {
    const multi = $("f-headers").querySelectorAll(".header-row").length > 1;
    const fixed = {
      "f-name": "name", "f-patterns": "patterns", "f-param": "placement.param",
      "f-header-name": multi ? "placement.headers[0].name" : "placement.name",
      "f-template": multi ? "placement.headers[0].template" : "placement.template",
      "f-basic-username": "placement.username", "f-basic-password": "placement.password",
      "f-path-template": "placement.template", "f-aws-region": "placement.region", "f-aws-service": "placement.service",
      "f-placement-json": "placement", "f-methods": "placement.methods", "f-remove-headers": "placement.remove_headers",
      "f-secret": "secret", "f-kind": "preset",
    };
    if (fixed[id]) return fixed[id];
    let m;
    if ((m = /^f-header-name-(\d+)$/.exec(id))) return "placement.headers[" + m[1] + "].name";
    if ((m = /^f-template-(\d+)$/.exec(id))) return "placement.headers[" + m[1] + "].template";
    if ((m = /^f-secret-(.+)$/.exec(id))) return "secrets." + m[1];
    if ((m = /^f-preset-param-(.+)$/.exec(id))) return "params." + m[1];
    return id;
  }

  function firstSecretInput() {
    const i = $("f-secrets").querySelector("input");
    return i ? i.id : "form";
  }

  /** Maps an API error field ("patterns[0]", "placement.headers[1].template", "secrets.app_key", …) to its input. */
  function fieldTarget(field) {
    if (!field) return null;
    const k = placementKind();
    let m;
    if (field === "name") return "f-name";
    if (field === "preset" || field === "params") return "f-kind";
    if ((m = /^params\.(.+)$/.exec(field))) return $("f-preset-param-" + m[1]) ? "f-preset-param-" + m[1] : "f-kind";
    if (/^patterns(\[|\.|$)/.test(field)) return "f-patterns";
    if (field === "secret" || field === "secrets") return $("f-secret") ? "f-secret" : firstSecretInput();
    if ((m = /^secrets\.(.+)$/.exec(field))) {
      const id = secretInputId("f-secret", m[1]);
      return $(id) ? id : firstSecretInput();
    }
    if (/^placement/.test(field)) {
      if (k === "json") return "f-placement-json";
      if ((m = /^placement\.headers\[(\d+)\]\.(name|template)/.exec(field))) {
        const i = Number(m[1]);
        const id = (m[2] === "name" ? "f-header-name" : "f-template") + (i ? "-" + i : "");
        return $(id) ? id : "f-placement";
      }
      const map = {
        "placement.name": "f-header-name", "placement.header": "f-header-name", "placement.param": "f-param",
        "placement.value": "f-param", "placement.username": "f-basic-username", "placement.password": "f-basic-password",
        "placement.region": "f-aws-region", "placement.service": "f-aws-service",
      };
      if (map[field]) return map[field];
      if (field === "placement.template") return k === "path" ? "f-path-template" : "f-template";
      if (/^placement\.methods/.test(field)) return "f-methods";
      if (/^placement\.remove_headers/.test(field)) return "f-remove-headers";
      return "f-placement";
    }
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

  /** Records a problem under the input it concerns (`target`), naming the API field in the summary. */
  function addError(target, field, message) {
    const summary = field && !String(message).includes(field) ? field + ": " + message : message;
    state.formErrors.set(target || "form", { field, message, summary });
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
    const out = [];
    if (state.formMode === "add") out.push("f-name");
    const preset = currentPreset();
    if (preset) {
      for (const i of $("f-params").querySelectorAll("input")) out.push(i.id);
    } else {
      out.push("f-patterns");
      const k = placementKind();
      if (k === "header") for (const i of $("f-headers").querySelectorAll("input")) out.push(i.id);
      else if (k === "basic") out.push("f-basic-username", "f-basic-password");
      else if (k === "query") out.push("f-param");
      else if (k === "path") out.push("f-path-template");
      else if (k === "aws_sigv4") out.push("f-aws-region", "f-aws-service");
      else out.push("f-placement-json");
      if (k !== "json") out.push("f-methods", "f-remove-headers");
    }
    for (const i of $("f-secrets").querySelectorAll("input")) out.push(i.id);
    return out;
  }

  /** In the edit form: what differs from the connector as it was opened. */
  function editChanges() {
    const o = state.editOriginal;
    const changes = {};
    if (!o) return changes;
    const patterns = readPatterns();
    if (!samePatterns(patterns, o.patterns)) changes.patterns = patterns;
    let placement = null;
    try {
      placement = readPlacement();
    } catch (_e) {
      placement = "invalid";
    }
    if (JSON.stringify(placement) !== o.placement) changes.placement = placement;
    if ($("f-scrub").checked !== o.scrub) changes.scrub_echo = $("f-scrub").checked;
    return changes;
  }

  /** Whether the edit needs every secret again: the server's rule, "who decides where a secret goes". */
  function editNeedsSecrets(changes) {
    return "patterns" in changes || "placement" in changes || changes.scrub_echo === false;
  }

  const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

  /** The client-side check of one input: a message, or null when it is fine. */
  function checkInput(id, value) {
    const el = $(id);
    const v = value !== undefined ? value : (el ? el.value : "");
    if (id === "f-name") {
      const t = v.trim();
      if (!t) return "a name is required";
      if (!/^[A-Za-z0-9_-]+$/.test(t)) return "use only letters, digits, - and _";
      if (t.length > 64) return "at most 64 characters";
      return null;
    }
    if (id === "f-patterns") {
      const n = readPatterns().length;
      if (n === 0) return "at least one pattern is required";
      if (n > 20) return "at most 20 patterns";
      return null;
    }
    if (/^f-header-name/.test(id)) {
      if (!v.trim()) return "a header name is required";
      return HEADER_NAME.test(v.trim()) ? null : "not a valid header name";
    }
    if (/^f-template/.test(id)) return HAS_SECRET.test(v) ? null : "the template must contain {{secret}} or {{secret.NAME}}";
    if (id === "f-param") return v.trim() ? null : "a parameter name is required";
    if (id === "f-basic-username") return v.trim() ? null : "a username (or a template for it) is required";
    if (id === "f-basic-password") return v ? null : "a password template is required, such as {{secret}}";
    if (id === "f-path-template") return HAS_SECRET.test(v) ? null : "the template must contain {{secret}} or {{secret.NAME}}";
    if (id === "f-aws-region") return v.trim() ? null : "a region is required, such as us-east-1";
    if (id === "f-aws-service") return v.trim() ? null : "a service signing name is required, such as sts";
    if (id === "f-placement-json") {
      let p;
      try {
        p = JSON.parse(v);
      } catch (_e) {
        return "not valid JSON";
      }
      return p && typeof p === "object" && !Array.isArray(p) && typeof p.type === "string"
        ? null : "give a JSON object with a \"type\"";
    }
    if (id === "f-methods") {
      return splitList(v).every((m) => /^[A-Za-z]+$/.test(m)) ? null : "list methods such as GET, POST";
    }
    if (id === "f-remove-headers") {
      return splitList(v).every((x) => HEADER_NAME.test(x)) ? null : "list header names, comma-separated";
    }
    if (/^f-preset-param-/.test(id)) {
      const p = currentPreset();
      const prm = p && (p.params || []).find((x) => "f-preset-param-" + x.name === id);
      return prm && prm.required && !v.trim() ? "required for this preset" : null;
    }
    if (/^f-secret/.test(id)) {
      if (v) return null;
      if (state.formMode === "add") return "a secret is required";
      const changes = editChanges();
      if (editNeedsSecrets(changes)) return "changing where the secret goes needs every secret again";
      if (takeNothing()) return null;
      return "rotation replaces the whole set: give every secret";
    }
    return null;
  }

  /** In the edit form: no secret typed at all. */
  function takeNothing() {
    return [...$("f-secrets").querySelectorAll("input")].every((i) => !i.value);
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
      if (problem) addError(id, fieldOf(id), problem);
      else state.formErrors.delete(id);
    }
    // Typing one secret can settle the others' "give every secret".
    if (/^f-secret/.test(id)) {
      for (const key of [...state.formErrors.keys()]) {
        if (/^f-secret/.test(key) && key !== id && !checkInput(key)) state.formErrors.delete(key);
      }
    }
    // A problem of the whole form, or of a group (placement, kind), is stale once anything changed.
    if (ev && ev.target && ev.target.name === "placement") state.formErrors.delete("f-placement");
    if (ev && ev.target && ev.target.id === "f-kind") state.formErrors.delete("f-kind");
    if (ev && ev.target && /^f-preset-param-/.test(ev.target.id)) state.formErrors.delete("f-kind");
    state.formErrors.delete("form");
    renderFormErrors();
  }

  function openForm(mode, connector) {
    const form = $("connector-form");
    form.reset();
    clearFormErrors();
    state.formMode = mode;
    state.editing = connector ? connector.name : null;
    state.secretLabels = {};
    state.placementKind = null;
    state.editOriginal = null;
    const isAdd = mode === "add";
    setText("form-title", isAdd ? "Add connector" : "Edit connector " + connector.name);
    setText("form-submit", isAdd ? "Add connector" : "Save changes");
    $("f-name").readOnly = !isAdd;
    $("f-kind").value = "custom";
    if (isAdd) {
      fillPlacement(null);
    } else {
      $("f-name").value = connector.name;
      $("f-patterns").value = (connector.patterns || []).join("\n");
      fillPlacement(connector.placement || {});
      $("f-scrub").checked = !!connector.scrub_echo;
      state.secretLabels = labelsOfPreset(presetOfConnector(connector));
    }
    syncFormVisibility();
    if (!isAdd) {
      let placement = null;
      try {
        placement = readPlacement();
      } catch (_e) {
        placement = "invalid";
      }
      state.editOriginal = { patterns: readPatterns(), placement: JSON.stringify(placement), scrub: $("f-scrub").checked };
    }
    setText(
      "f-secret-hint",
      isAdd
        ? "Write-only: never shown again."
        : "Changing patterns or placement needs every secret again; secrets alone rotate them. Write-only: never shown.",
    );
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

  async function submitForm(ev) {
    ev.preventDefault();
    clearFormErrors();
    // The secrets leave their inputs now, whatever happens next.
    let secrets = takeSecrets($("f-secrets"));
    const given = Object.values(secrets).some((v) => v);
    const isAdd = state.formMode === "add";
    const name = $("f-name").value.trim();
    const changes = isAdd ? {} : editChanges();
    // Every problem at once, not the first one only.
    for (const id of activeInputs()) {
      const el = $(id);
      const problem = el && el.dataset.secret !== undefined
        ? checkSecret(secrets[el.dataset.secret], isAdd || given || editNeedsSecrets(changes))
        : checkInput(id);
      if (problem) addError(id, fieldOf(id), problem);
    }
    if (!isAdd && !given && Object.keys(changes).length === 0) {
      addError("form", null, "Nothing to save: change something, or give new secrets to rotate them.");
    }
    if (state.formErrors.size > 0) {
      secrets = null;
      renderFormErrors();
      focusFirstError();
      return;
    }
    let body;
    const preset = currentPreset();
    if (isAdd && preset) {
      body = Object.assign({ name, preset: preset.id }, secretsBody(secrets));
      const params = readParams();
      if (Object.keys(params).length) body.params = params;
    } else if (isAdd) {
      body = Object.assign({ name, patterns: readPatterns(), placement: readPlacement(), scrub_echo: $("f-scrub").checked },
        secretsBody(secrets));
    } else {
      body = Object.assign({}, changes, given ? secretsBody(secrets) : {});
    }
    secrets = null;
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
        const rotatedOnly = given && Object.keys(changes).length === 0;
        setText("detail-status", "Connector \u201c" + savedName + "\u201d saved." + (rotatedOnly ? " Secrets rotated." : ""));
        if (saved) renderConfig(saved);
        if (state.view === "detail") await loadDetail();
      }
    } catch (e) {
      body = null;
      if (e.status === 401) return;
      addError(fieldTarget(e.field) || "form", e.field, e.message);
      renderFormErrors();
      focusFirstError();
    } finally {
      submit.disabled = false;
    }
  }

  function checkSecret(value, required) {
    if (value || !required) return null;
    if (state.formMode === "add") return "a secret is required";
    return "changing where the secret goes, or rotating, needs every secret";
  }

  // ---------- rotate / delete / test ----------

  function renderRotate(c) {
    const names = connectorSecretNames(c);
    renderSecretFields($("rotate-secrets"), "rotate-secret", names, labelsOfPreset(presetOfConnector(c)));
    const title = names.length > 1 ? "Rotate secrets" : "Rotate secret";
    setText("rotate-title", title);
    setText("rotate-submit", title);
  }

  async function submitRotate(ev) {
    ev.preventDefault();
    let vals = takeSecrets($("rotate-secrets"));
    setText("rotate-error", "");
    setText("detail-status", "");
    for (const i of $("rotate-secrets").querySelectorAll("input")) i.removeAttribute("aria-invalid");
    const missing = Object.keys(vals).filter((n) => !vals[n]);
    if (missing.length) {
      vals = null;
      for (const n of missing) $(secretInputId("rotate-secret", n)).setAttribute("aria-invalid", "true");
      setText("rotate-error", missing.length === 1 && missing[0] === "secret"
        ? "secret: enter the new secret"
        : "give every secret (rotation replaces the whole set): " + missing.map((n) => n === "secret" ? "secret" : "secrets." + n).join(", "));
      $(secretInputId("rotate-secret", missing[0])).focus();
      return;
    }
    let body = secretsBody(vals);
    vals = null;
    try {
      const saved = await api("PATCH", connectorPath(state.current, ""), body);
      body = null;
      setText("detail-status", "Secret rotated. Steps use the new secret from now on.");
      if (saved) renderConfig(saved);
    } catch (e) {
      body = null;
      if (e.status === 401) return;
      const m = e.field && /^secrets?(?:\.(.+))?$/.exec(e.field);
      const input = m ? $(secretInputId("rotate-secret", m[1] || "secret")) : null;
      if (input) input.setAttribute("aria-invalid", "true");
      setText("rotate-error", (e.field ? e.field + ": " : "") + e.message);
    }
  }

  /** A confirmation dialog; resolves true when the action is confirmed. */
  function confirmAction(title, text, action) {
    return new Promise((resolve) => {
      const dlg = $("confirm-dialog");
      setText("confirm-title", title);
      $("confirm-text").replaceChildren(...text);
      setText("confirm-ok", action);
      dlg.returnValue = "cancel";
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
      dlg.showModal();
    });
  }

  async function deleteCurrent() {
    const name = state.current;
    if (!name) return;
    const ok = await confirmAction("Delete connector?", [
      "Steps that use ", h("strong", { text: name }), " will no longer reach its API. This cannot be undone."], "Delete");
    if (!ok) return;
    try {
      await api("DELETE", connectorPath(name, ""));
      setText("list-status", "Connector \u201c" + name + "\u201d deleted.");
      state.current = null;
      location.hash = "#/";
    } catch (e) {
      if (e.status !== 401) setText("detail-error", e.message);
    }
  }

  /** A URL to test a connector with: its preset's check URL, or the first pattern without its `*`. */
  function suggestTestUrl(c) {
    const pats = Array.isArray(c.patterns) ? c.patterns : [];
    const p = (state.presets || []).find((x) => !(x.params && x.params.length) && x.check_url && samePatterns(x.patterns, pats));
    if (p) return p.check_url;
    const first = pats[0] || "";
    if (!first || /^[a-z]+:\/\/[^/]*\*/.test(first)) return "";
    return first.replace(/\*$/, "");
  }

  function resetTest() {
    show("test-result", false);
    setText("test-url-error", "");
    $("test-url").removeAttribute("aria-invalid");
    $("test-url").value = "";
    state.testFor = null;
  }

  async function submitTest(ev) {
    ev.preventDefault();
    const name = state.current;
    const url = $("test-url").value.trim();
    setText("test-url-error", "");
    $("test-url").removeAttribute("aria-invalid");
    const btn = $("test-submit");
    btn.disabled = true;
    setText("test-submit", "Testing…");
    try {
      const r = await api("POST", connectorPath(name, "/test"), url ? { url } : {});
      if (state.current !== name) return;
      renderTest(r);
    } catch (e) {
      if (e.status === 401 || state.current !== name) return;
      if (e.field === "url") {
        show("test-result", false);
        $("test-url").setAttribute("aria-invalid", "true");
        setText("test-url-error", "url: " + e.message);
        $("test-url").focus();
      } else {
        renderTest({ ok: false, status: null, error: e.message, url: url });
      }
    } finally {
      btn.disabled = false;
      setText("test-submit", "Test connection");
    }
  }

  function renderTest(r) {
    const badge = $("test-badge");
    badge.className = "badge " + (r.ok ? "badge-ok" : "badge-alert");
    badge.dataset.ok = String(!!r.ok);
    setText("test-badge", r.ok ? "Connected" : "Failed");
    setText("test-status", r.status != null ? r.status + (r.status_text ? " " + r.status_text : "") : "No answer");
    setText("test-time", typeof r.duration_ms === "number"
      ? "in " + fmtDuration(r.duration_ms) + (r.redirects ? ", after " + r.redirects + " redirects" : "") : "");
    setText("test-url-shown", r.url ? "GET " + r.url : "");
    setText("test-error", r.error || "");
    setText("test-excerpt", r.excerpt || "");
    show("test-excerpt", !!r.excerpt);
    show("test-result", true);
  }

  // ---------- tokens ----------

  async function openTokens() {
    showView("tokens");
    document.title = "Tokens · codestep";
    await loadTokens();
  }

  async function loadTokens() {
    setText("tokens-error", "");
    try {
      const data = await api("GET", wsPath("/tokens"));
      if (state.view !== "tokens") return;
      renderTokens(data && Array.isArray(data.items) ? data.items : []);
    } catch (e) {
      if (e.status !== 401) setText("tokens-error", e.message);
    }
  }

  const STATE_TEXT = { active: "Active", expired: "Expired", revoked: "Revoked" };

  function renderTokens(items) {
    const order = { active: 0, expired: 1, revoked: 2 };
    const rows = items
      .slice()
      .sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || String(b.created_at).localeCompare(String(a.created_at)))
      .map((t) => h("tr", { "data-testid": "token-row", "data-id": t.id, "data-label": t.label, "data-state": t.state },
        h("th", { scope: "row", "data-label": "Label", "data-testid": "token-label", text: t.label }),
        h("td", { "data-label": "Scopes", "data-testid": "token-scopes" },
          h("span", { class: "scopes" }, ...(t.scopes || []).map((s) => h("code", { class: "scope", text: s })))),
        h("td", { class: "nowrap", "data-label": "Created" }, h("time", { datetime: t.created_at || "", text: fmtTime(t.created_at) })),
        h("td", { class: "nowrap", "data-label": "Last used", "data-testid": "token-last-used" },
          t.last_used_at ? h("time", { datetime: t.last_used_at, text: fmtTime(t.last_used_at) }) : h("span", { class: "muted", text: "never" })),
        h("td", { class: "nowrap", "data-label": "Expires", "data-testid": "token-expires" },
          t.expires_at ? h("time", { datetime: t.expires_at, text: fmtTime(t.expires_at) }) : h("span", { class: "muted", text: "never" })),
        h("td", { "data-label": "State" },
          h("span", { class: "badge token-" + safeClass(t.state) + (t.state === "active" ? " badge-ok" : ""),
            "data-testid": "token-state", text: STATE_TEXT[t.state] || t.state })),
        h("td", { class: "actions", "data-label": "" },
          t.state === "revoked" ? null : h("button", { type: "button", class: "btn btn-danger small", "data-testid": "token-revoke",
            "aria-label": "Revoke token " + t.label, text: "Revoke", onclick: () => revokeToken(t) }))));
    $("token-rows").replaceChildren(...rows);
    show("tokens-empty", rows.length === 0);
  }

  /** The create-token form's checks, one field at a time. */
  function tokenProblem(id) {
    if (id === "t-label") return $("t-label").value.trim() ? null : "a label is required";
    if (id === "t-scopes") {
      return document.querySelector('#token-form input[name="scope"]:checked') ? null : "choose at least one scope";
    }
    if (id === "t-expires") {
      const exp = $("t-expires").value;
      if (!exp) return null;
      const d = new Date(exp + "T00:00:00Z");
      if (isNaN(d.getTime())) return "not a valid date";
      return d.getTime() <= Date.now() ? "must be in the future" : null;
    }
    return null;
  }

  /** After an edit of the create-token form: a problem that is fixed goes, the others stay. */
  function recheckToken(ev) {
    const t = ev && ev.target;
    const id = t && t.name === "scope" ? "t-scopes" : t && t.id;
    if (!id || !(id in state.tokenProblems)) return;
    const p = tokenProblem(id);
    if (p) state.tokenProblems[id] = p;
    else delete state.tokenProblems[id];
    delete state.tokenProblems.form;
    tokenErrors(state.tokenProblems);
  }

  function tokenErrors(map) {
    state.tokenProblems = Object.assign({}, map);
    for (const id of ["t-label", "t-expires", "t-scopes"]) {
      const msg = map[id] || "";
      setText(id + "-error", msg);
      if (msg && id !== "t-scopes") $(id).setAttribute("aria-invalid", "true");
      else $(id).removeAttribute("aria-invalid");
    }
    const all = Object.entries(map).map(([id, m]) => (id === "form" ? m : id.slice(2) + ": " + m));
    setText("t-form-error", all.length > 1 ? all.length + " problems: " + all.join("; ") : all.join(""));
  }

  async function submitToken(ev) {
    ev.preventDefault();
    setText("tokens-status", "");
    const label = $("t-label").value.trim();
    const scopes = [...document.querySelectorAll('#token-form input[name="scope"]:checked')].map((i) => i.value);
    const exp = $("t-expires").value;
    const problems = {};
    for (const id of ["t-label", "t-scopes", "t-expires"]) {
      const p = tokenProblem(id);
      if (p) problems[id] = p;
    }
    const expiresAt = exp ? exp + "T00:00:00Z" : null;
    tokenErrors(problems);
    if (Object.keys(problems).length) {
      $(Object.keys(problems)[0] === "t-scopes" ? "t-scopes" : Object.keys(problems)[0]).focus();
      return;
    }
    const body = { label, scopes };
    if (expiresAt) body.expires_at = expiresAt;
    const btn = $("t-submit");
    btn.disabled = true;
    try {
      const t = await api("POST", wsPath("/tokens"), body);
      $("token-form").reset();
      tokenErrors({});
      showNewToken(t);
      await loadTokens();
    } catch (e) {
      if (e.status === 401) return;
      const target = { label: "t-label", scopes: "t-scopes", expires_at: "t-expires" }[e.field] || "form";
      tokenErrors({ [target]: e.message });
    } finally {
      btn.disabled = false;
    }
  }

  function showNewToken(t) {
    setText("new-token-label", "\u201c" + (t.label || "") + "\u201d");
    $("new-token-value").value = t.token || "";
    setText("new-token-copied", "");
    show("new-token", true);
    $("new-token-value").focus();
    $("new-token-value").select();
  }

  /** The new token leaves the page: it is shown once. */
  function hideNewToken() {
    $("new-token-value").value = "";
    setText("new-token-copied", "");
    show("new-token", false);
  }

  async function copyNewToken() {
    const input = $("new-token-value");
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(input.value);
        ok = true;
      }
    } catch (_e) {
      ok = false;
    }
    if (!ok) {
      input.focus();
      input.select();
      try {
        ok = document.execCommand("copy");
      } catch (_e) {
        ok = false;
      }
    }
    setText("new-token-copied", ok ? "Copied to the clipboard." : "Select the token and copy it with your keyboard.");
  }

  async function revokeToken(t) {
    const ok = await confirmAction("Revoke token?", [
      "Anything that uses ", h("strong", { text: t.label }), " stops working at once. This cannot be undone."], "Revoke");
    if (!ok) return;
    try {
      await api("DELETE", wsPath("/tokens/" + encodeURIComponent(t.id)));
      setText("tokens-status", "Token \u201c" + t.label + "\u201d revoked. It no longer works.");
      await loadTokens();
    } catch (e) {
      if (e.status !== 401) setText("tokens-error", e.message);
    }
  }

  // ---------- audit ----------

  async function openAudit() {
    showView("audit");
    document.title = "Audit · codestep";
    await loadAudit(false);
  }

  async function loadAudit(older) {
    const seq = ++state.auditSeq;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (older && state.auditCursor != null) params.set("before", String(state.auditCursor));
    setText("audit-error", "");
    $("audit-older").disabled = true;
    try {
      const data = await api("GET", wsPath("/audit?" + params.toString()));
      if (seq !== state.auditSeq || state.view !== "audit") return;
      const items = data && Array.isArray(data.items) ? data.items : [];
      const rows = items.map((a) =>
        h("tr", { "data-testid": "audit-row", "data-id": a.id, "data-action": a.action || "" },
          h("td", { class: "nowrap", "data-label": "When" }, h("time", { datetime: a.at || "", text: fmtTime(a.at) })),
          h("td", { "data-label": "Who", "data-testid": "audit-who", text: a.who || "" }),
          h("td", { "data-label": "Action" }, h("code", { "data-testid": "audit-action", text: a.action || "" })),
          h("td", { "data-label": "Connector", "data-testid": "audit-connector" },
            a.connector ? h("span", { text: a.connector }) : h("span", { class: "muted", text: "—" })),
          h("td", { class: "nowrap", "data-label": "Address", "data-testid": "audit-address" },
            a.address ? h("span", { text: a.address }) : h("span", { class: "muted", text: "CLI" })),
          h("td", { "data-label": "Detail", "data-testid": "audit-detail", class: "detail", text: a.detail || "" })));
      if (older) $("audit-rows").append(...rows);
      else $("audit-rows").replaceChildren(...rows);
      state.auditCursor = data && data.next != null ? data.next : null;
      show("audit-older", state.auditCursor != null);
      show("audit-empty", $("audit-rows").children.length === 0);
    } catch (e) {
      if (seq === state.auditSeq && e.status !== 401) setText("audit-error", e.message);
    } finally {
      $("audit-older").disabled = false;
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
    $("test-form").addEventListener("submit", submitTest);
    $("token-form").addEventListener("submit", submitToken);
    $("token-form").addEventListener("change", recheckToken);
    $("token-form").addEventListener("input", recheckToken);
    $("tokens-refresh").addEventListener("click", () => loadTokens());
    $("new-token-copy").addEventListener("click", copyNewToken);
    $("new-token-done").addEventListener("click", () => {
      hideNewToken();
      setText("tokens-status", "The new token is no longer shown.");
    });
    $("audit-refresh").addEventListener("click", () => loadAudit(false));
    $("audit-older").addEventListener("click", () => loadAudit(true));
    $("f-add-header").addEventListener("click", () => {
      const list = readHeaders();
      list.push({ name: "", template: "" });
      setHeaders(list);
      syncFormVisibility();
      $("f-header-name-" + (list.length - 1)).focus();
    });
    $("f-preset-customize").addEventListener("click", customizePreset);
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
      if (ev.target && ev.target.id === "f-kind") state.secretLabels = {};
      syncFormVisibility();
      recheckForm(ev);
    });
    $("connector-form").addEventListener("input", (ev) => {
      if (ev.target && ev.target.type !== "password") syncFormVisibility();
      recheckForm(ev);
    });
    $("runs-outcome").addEventListener("change", () => loadRuns(false));
    $("runs-refresh").addEventListener("click", () => loadRuns(false));
    $("runs-older").addEventListener("click", () => loadRuns(true));
    $("form-cancel").addEventListener("click", () => closeDialog($("connector-dialog")));
    $("connector-dialog").addEventListener("close", () => {
      clearSecrets($("f-secrets"));
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
