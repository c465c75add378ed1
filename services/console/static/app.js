// Verbund operations console: plain JS, no build step.
// The bearer token lives in sessionStorage and goes out as the Authorization header, also
// for the live stream (server-sent events read with fetch, so no token in any URL).
"use strict";

const TOKEN_KEY = "verbund.console.token";
const SEVERITIES = ["critical", "shortage", "watch"];
let session = null;
let streamAbort = null;
let retryTimer = null;
let lastViews = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  return { Authorization: "Bearer " + token() };
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const s = Math.floor(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function since(iso) {
  const t = Date.parse(iso);
  return isNaN(t) ? "" : age(Math.max(0, (Date.now() - t) / 1000)) + " ago";
}

function stateBadge(state) {
  return el("span", { class: "state " + state, "data-state": state, text: state.replace("_", " ") });
}

// -- login ----------------------------------------------------------------------------------
async function login(candidate) {
  const answer = await fetch("/v1/session", { headers: { Authorization: "Bearer " + candidate } });
  if (answer.status === 401) throw new Error("This token is not valid.");
  if (!answer.ok) throw new Error("The console answered " + answer.status + ".");
  return answer.json();
}

function showLogin(error) {
  stopStream();
  session = null;
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = error || "";
  $("token").focus();
}

function showMain() {
  $("login-error").textContent = "";
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = session.principal + " (" + session.role + ")";
}

async function start() {
  if (!token()) return showLogin("");
  try {
    session = await login(token());
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    return showLogin(error.message);
  }
  showMain();
  openStream();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = $("token").value.trim();
  if (!candidate) return;
  try {
    session = await login(candidate);
  } catch (error) {
    $("login-error").textContent = error.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, candidate);
  $("token").value = "";
  showMain();
  openStream();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin("");
});

// -- live stream ----------------------------------------------------------------------------
function setLive(on) {
  $("live").className = "live " + (on ? "on" : "off");
  $("live").textContent = on ? "live" : "reconnecting";
}

function stopStream() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
  clearTimeout(retryTimer);
}

async function openStream() {
  stopStream();
  const controller = new AbortController();
  streamAbort = controller;
  try {
    const answer = await fetch("/v1/events/stream", {
      headers: { ...authHeaders(), Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (answer.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin("Your token is no longer valid.");
    }
    if (!answer.ok || !answer.body) throw new Error("stream answered " + answer.status);
    setLive(true);
    const reader = answer.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        handleEvent(block);
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
  }
  if (streamAbort !== controller) return;
  setLive(false);
  retryTimer = setTimeout(openStream, 2000);
}

function handleEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (name === "views" && data.length) render(JSON.parse(data.join("\n")));
}

// -- views ----------------------------------------------------------------------------------
// Each role gets only the views it may see (need-to-know); a section shows when its view came.
function render(views) {
  lastViews = views;
  $("alliance").textContent = views.alliance || "";
  document.querySelectorAll("section[data-view]").forEach((section) => {
    section.hidden = !(section.dataset.view in views);
  });
  $("summary").hidden = !views.summary;
  if (views.summary) renderSummary(views.summary);
  if (views.board) renderBoard(views.board);
  if (views.aggregates) renderAggregates(views.aggregates);
  if (views.mine) renderMine(views.mine);
  if (views.runs) renderRuns(views.runs);
  if (views.freshness) renderFreshness(views.freshness);
  if (views.decisions) renderDecisions(views.decisions);
}

function figureText(value) {
  return value === null || value === undefined ? "suppressed" : Number(value).toLocaleString();
}

function renderAggregates(agg) {
  $("aggregates-note").textContent = "over at least " + agg.min_partners + " partners; smaller figures suppressed";
  if (!agg.materials.length) {
    $("aggregates").replaceChildren(el("p", { class: "empty", text: "No data yet." }));
    return;
  }
  const head = el("tr", {}, ["material", "region", "need", "surplus", "partners in shortage"].map((h) => el("th", { text: h })));
  const rows = [];
  for (const table of agg.materials) {
    const lines = [["all regions", table.total], ...Object.entries(table.by_region)];
    for (const [region, cell] of lines) {
      rows.push(
        el(
          "tr",
          {
            "data-material": table.material,
            "data-region": region,
            "data-suppressed": cell.suppressed ? "true" : "false",
            class: cell.suppressed ? "suppressed" : "",
          },
          el("td", { text: table.material + " (" + table.unit + ")" }),
          el("td", { text: region }),
          el("td", { class: "num", text: figureText(cell.need) }),
          el("td", { class: "num", text: figureText(cell.surplus) }),
          el("td", { class: "num", text: figureText(cell.partners_in_shortage) }),
        ),
      );
    }
  }
  $("aggregates").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
}

function renderMine(mine) {
  $("mine-name").textContent = mine.name;
  const section = (title, headers, rows, empty) =>
    el(
      "div",
      { class: "mine-part" },
      el("h3", { text: title }),
      rows.length
        ? el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))), el("tbody", {}, rows))
        : el("p", { class: "empty", text: empty }),
    );
  const positions = mine.positions.map((p) =>
    el(
      "tr",
      { "data-position": p.material, "data-site": p.site },
      el("td", { text: p.material }),
      el("td", { text: p.site }),
      el("td", { class: "num", text: p.on_hand + " " + p.unit }),
      el("td", { class: "num", text: p.safety_stock + " " + p.unit }),
      el("td", { class: "num", text: p.coverage_days === null ? "\u2013" : p.coverage_days.toFixed(1) + " d" }),
    ),
  );
  const needs = mine.needs.map((n) =>
    el(
      "tr",
      { "data-need": n.need_id },
      el("td", { text: n.material }),
      el("td", { class: "num", text: n.quantity + " " + n.unit }),
      el("td", { text: n.needed_by }),
      el("td", { text: n.criticality }),
    ),
  );
  const orders = mine.orders.map((o) =>
    el(
      "tr",
      { "data-order-id": o.order_id, "data-state": o.state, "data-direction": o.direction || "" },
      el("td", { text: o.kind }),
      el("td", { text: o.direction || "" }),
      el("td", { class: "counterparty", text: o.counterparty || "" }),
      el("td", { text: (o.quantity ?? o.hours ?? "") + " " + (o.unit || (o.hours !== undefined ? "h" : "")) + " " + (o.material || o.material_id || o.capability || "") }),
      el("td", {}, stateBadge(o.state), o.must_answer ? el("div", { class: "muted", text: "your answer is required" }) : null),
    ),
  );
  $("mine").replaceChildren(
    section("Positions", ["material", "site", "on hand", "safety stock", "coverage"], positions, "No positions reported."),
    section("Needs", ["material", "quantity", "needed by", "criticality"], needs, "No open needs."),
    section("Orders", ["kind", "direction", "other party", "what", "state"], orders, "No orders involve you."),
  );
}

function renderSummary(s) {
  const figure = (value, label, cls) =>
    el("span", { class: "figure " + (cls || ""), "data-figure": label }, el("b", { text: value }), label);
  $("summary").replaceChildren(
    figure(s.open_shortages, "open shortages"),
    figure(s.critical, "critical", s.critical ? "alarm" : ""),
    figure(s.stale_partners + "/" + s.partners, "partners stale", s.stale_partners ? "warn" : ""),
    figure(s.active_runs, "active runs"),
    figure(s.awaiting_approval, "awaiting approval", s.awaiting_approval ? "warn" : ""),
  );
}

function renderBoard(board) {
  if (!board.cells.length) {
    $("board").replaceChildren(el("p", { class: "empty", text: "No open shortages." }));
    return;
  }
  const cells = new Map(board.cells.map((c) => [c.material + "\u0000" + c.region, c]));
  const head = el("tr", {}, el("th", { text: "material" }), board.regions.map((r) => el("th", { text: r })));
  const rows = board.materials.map((material) =>
    el(
      "tr",
      {},
      el("th", { text: material }),
      board.regions.map((region) => {
        const cell = cells.get(material + "\u0000" + region);
        if (!cell) return el("td", { class: "cell none", text: "\u2013" });
        const detail = SEVERITIES.filter((s) => cell.by_severity[s])
          .map((s) => cell.by_severity[s] + " " + s)
          .join(", ");
        return el(
          "td",
          {
            class: "cell " + cell.worst,
            "data-material": material,
            "data-region": region,
            "data-severity": cell.worst,
            "data-count": cell.count,
            title: cell.partners.join(", "),
          },
          el("b", { text: cell.count }),
          el("small", { text: detail }),
        );
      }),
    ),
  );
  $("board").replaceChildren(el("table", { class: "board" }, el("thead", {}, head), el("tbody", {}, rows)));
}

function renderRuns(runs) {
  if (!runs.length) {
    $("runs").replaceChildren(el("p", { class: "empty", text: "No protocol runs yet." }));
    return;
  }
  const canApprove = session && session.permissions.includes("approve");
  const rows = runs.map((run) =>
    el(
      "tr",
      { "data-run-id": run.run_id, "data-state": run.state },
      el("td", {}, el("code", { text: run.run_id }), el("div", { class: "muted", text: run.trigger })),
      el("td", { text: run.protocol_id + " v" + run.protocol_version }),
      el("td", {}, stateBadge(run.state), run.detail ? el("div", { class: "muted", text: run.detail }) : null),
      el("td", { class: "num", text: run.approvals.length + "/" + run.approvals_needed, title: run.approvals.join(", ") }),
      el("td", { text: since(run.at) }),
      el(
        "td",
        {},
        canApprove && run.awaiting
          ? [
              el("button", { class: "approve", "data-action": "approve", onclick: () => act(run.run_id, "approve") }, "Approve"),
              " ",
              el("button", { class: "reject", "data-action": "reject", onclick: () => act(run.run_id, "reject") }, "Reject"),
            ]
          : null,
      ),
    ),
  );
  const head = el("tr", {}, ["run", "protocol", "state", "approvals", "updated", ""].map((h) => el("th", { text: h })));
  $("runs").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
}

function renderFreshness(freshness) {
  $("freshness-note").textContent =
    freshness.stale + " of " + freshness.total + " stale (older than " + age(freshness.stale_after_seconds) + ")";
  if (!freshness.partners.length) {
    $("freshness").replaceChildren(el("p", { class: "empty", text: "No partners known." }));
    return;
  }
  const head = el("tr", {}, ["partner", "region", "sector", "data age"].map((h) => el("th", { text: h })));
  const rows = freshness.partners.map((p) =>
    el(
      "tr",
      { class: p.stale ? "stale" : "", "data-partner": p.partner, "data-stale": p.stale ? "true" : "false" },
      el("td", { text: p.partner, title: p.name }),
      el("td", { text: p.region }),
      el("td", { text: p.sector }),
      el("td", { class: "num", text: age(p.age_seconds) }),
    ),
  );
  $("freshness").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
}

function renderDecisions(decisions) {
  if (!decisions.length) {
    $("decisions").replaceChildren(el("p", { class: "empty", text: "No decisions yet." }));
    return;
  }
  const blocks = decisions.map((d) => {
    const unmet = Object.entries(d.unmet_by_tier)
      .map(([tier, value]) =>
        "tier " + tier + ": " + (value === null ? "withheld" : Number(value).toLocaleString()))
      .join(", ");
    const states = Object.entries(d.order_states)
      .map(([state, n]) => n + " " + state)
      .join(", ");
    const head = el(
      "div",
      { class: "head" },
      el("code", { text: d.run_id }),
      el("span", { text: d.protocol_id + " \u00b7 revision " + d.revision }),
      stateBadge(d.status),
      el("span", { class: "muted", text: "unmet " + (unmet || "none") }),
      el("span", { class: "muted", text: d.orders_count + " orders" + (states ? " (" + states + ")" : "") }),
      el("span", { class: "muted", text: since(d.at) }),
    );
    const rows = d.orders.map((o) =>
      el(
        "tr",
        { "data-order-id": o.order_id, "data-state": o.state },
        el("td", { class: "num", text: o.revision }),
        el("td", { text: o.kind || "" }),
        el("td", { text: o.summary }),
        el("td", { text: o.responder || "" }),
        el("td", {}, stateBadge(o.state), o.reason ? el("div", { class: "muted", text: o.reason }) : null),
      ),
    );
    const table = rows.length
      ? el(
          "table",
          {},
          el("thead", {}, el("tr", {}, ["rev", "kind", "order", "must answer", "acknowledgement"].map((h) => el("th", { text: h })))),
          el("tbody", {}, rows),
        )
      : el("p", { class: "empty", text: d.explanation || "No orders." });
    return el("div", { class: "decision", "data-run-id": d.run_id }, head, table);
  });
  $("decisions").replaceChildren(...blocks);
}

// -- commands -------------------------------------------------------------------------------
function message(text, bad) {
  const box = $("message");
  box.textContent = text;
  box.className = "message" + (bad ? " bad" : "");
  box.hidden = !text;
}

async function act(runId, action) {
  let body = {};
  if (action === "reject") {
    const reason = window.prompt("Why is run " + runId + " rejected?", "");
    if (reason === null) return;
    body = { reason };
  }
  document.querySelectorAll('tr[data-run-id="' + runId + '"] button').forEach((b) => (b.disabled = true));
  try {
    const answer = await fetch("/v1/runs/" + runId + "/" + action, {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const result = await answer.json().catch(() => ({}));
    if (answer.status === 401) return showLogin("Your token is no longer valid.");
    if (!answer.ok) {
      message(action + " refused: " + (result.message || answer.status), true);
    } else {
      message(action === "approve" ? "Approved " + runId + " (now " + result.state + ")." : "Rejected " + runId + ".", false);
    }
  } catch (error) {
    message(action + " failed: " + error.message, true);
  }
  if (lastViews) renderRuns(lastViews.runs);
}

start();
