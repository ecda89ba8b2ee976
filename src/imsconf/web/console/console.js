// imsconf web console: a thin client of the /api/v1 operator API.
// No framework and no build step. All data is written with textContent (never as HTML). The token is kept in
// sessionStorage (gone when the tab closes) and sent as a bearer header, also for the event stream, which is
// read with fetch() rather than EventSource so that the token never appears in a URL.
"use strict";

const TOKEN_KEY = "imsconf-token";
const state = { token: null, role: null, view: null, confId: null, stream: null, refreshTimer: null };

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  let data = null;
  const type = resp.headers.get("Content-Type") || "";
  if (type.includes("json")) data = await resp.json();
  if (!resp.ok) {
    if (resp.status === 401) signOut("the token was refused");
    throw new ApiError(resp.status, data);
  }
  return data;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function show(view) {
  for (const id of ["login-view", "list-view", "conference-view"]) $(id).hidden = id !== view;
  state.view = view;
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---- sign in / out ------------------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  try {
    const session = await api("GET", "/api/v1/session");
    state.role = session && session.role ? session.role : "operator";
  } catch (err) {
    state.token = null;
    throw err;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("logout").hidden = false;
  setStatus(`signed in (${state.role})`);
  document.body.dataset.role = state.role;
  openStream();
  route();
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.role = null;
  if (state.stream) state.stream.abort();
  state.stream = null;
  $("logout").hidden = true;
  setStatus(reason ? `signed out: ${reason}` : "signed out");
  show("login-view");
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    await signIn($("token").value.trim());
    $("token").value = "";
  } catch (err) {
    $("login-error").textContent = err.status === 401 ? "That token is not valid." : `Sign-in failed: ${err.message}`;
  }
});
$("logout").addEventListener("click", () => signOut());

// ---- routing ------------------------------------------------------------------------------------------

function route() {
  if (!state.token) {
    show("login-view");
    return;
  }
  const m = location.hash.match(/^#\/conferences\/(.+)$/);
  if (m) {
    state.confId = decodeURIComponent(m[1]);
    show("conference-view");
    loadConference();
  } else {
    state.confId = null;
    show("list-view");
    loadList();
  }
}
window.addEventListener("hashchange", route);

// ---- the list of live conferences ---------------------------------------------------------------------

async function loadList() {
  let data;
  try {
    data = await api("GET", "/api/v1/conferences");
  } catch (err) {
    setStatus(`cannot list conferences: ${err.message}`);
    return;
  }
  const body = $("conferences").querySelector("tbody");
  body.replaceChildren();
  for (const c of data.conferences) {
    const tr = el("tr", null, "clickable");
    tr.dataset.conference = c.id;
    tr.append(
      el("td", c.uri),
      el("td", c.owner || ""),
      el("td", c.participants),
      el("td", c.locked ? "locked" : ""),
      el("td", c.downlink),
      el("td", c.key_epoch === null ? "" : c.key_epoch),
      el("td", fmtTime(c.created)),
    );
    tr.addEventListener("click", () => {
      location.hash = `#/conferences/${encodeURIComponent(c.id)}`;
    });
    body.append(tr);
  }
  $("no-conferences").hidden = data.conferences.length > 0;
}

// ---- one conference -----------------------------------------------------------------------------------

async function loadConference() {
  const id = state.confId;
  let c;
  try {
    c = await api("GET", `/api/v1/conferences/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status === 404) {
      $("conf-title").textContent = "This conference has ended.";
      $("roster").querySelector("tbody").replaceChildren();
      $("conf-facts").replaceChildren();
      return;
    }
    $("conf-error").textContent = err.message;
    return;
  }
  if (id !== state.confId) return; // the operator navigated away meanwhile
  renderConference(c);
}

function fact(dl, name, value) {
  const dd = el("dd", value);
  dl.append(el("dt", name), dd);
  return dd;
}

function renderConference(c) {
  $("conf-title").textContent = c.uri;
  const dl = $("conf-facts");
  dl.replaceChildren();
  fact(dl, "Owner", c.owner || "");
  fact(dl, "Created", fmtTime(c.created));
  fact(dl, "Downlink", c.downlink);
  fact(dl, "Key epoch", c.key_epoch === null ? "" : c.key_epoch);
  fact(dl, "Locked", c.locked ? "yes" : "no");
  fact(dl, "Messages", c.messages || 0).id = "conf-messages"; // a count only: the content is never shown
  const lock = $("lock");
  lock.textContent = c.locked ? "Unlock" : "Lock";
  lock.dataset.locked = c.locked ? "1" : "0";

  const body = $("roster").querySelector("tbody");
  body.replaceChildren();
  for (const p of c.participants) {
    const tr = el("tr");
    tr.dataset.participant = p.id;
    const dot = el("span", null, p.speaking ? "speaking-dot on" : "speaking-dot");
    dot.title = p.speaking ? "speaking" : "silent";
    dot.dataset.speaking = p.speaking ? "1" : "0";
    const who = el("td");
    who.append(el("div", p.display || p.uri), el("small", p.display ? p.uri : "", "muted-text"));
    const stateCell = el("td");
    if (p.muted) stateCell.append(el("span", "muted", "badge warn"));
    if (p.deaf) stateCell.append(el("span", "deaf", "badge warn"));
    if (p.on_hold) stateCell.append(el("span", "on hold", "badge"));
    const key = p.key === "group" && c.key_epoch !== null ? `group #${c.key_epoch}` : p.key;
    const dotCell = el("td");
    dotCell.append(dot);
    tr.append(dotCell, who, el("td", p.role), el("td", p.transport), el("td", p.codec || ""),
      el("td", p.srtp || "none"), el("td", key), el("td", p.floor ? "holder" : ""), el("td", p.chat ? "yes" : ""), stateCell,
      actionsCell(c.id, p));
    body.append(tr);
  }
  applyRole();
}

function actionButton(label, action, handler) {
  const b = el("button", label);
  b.type = "button";
  b.dataset.action = action;
  b.dataset.write = "";
  b.addEventListener("click", handler);
  return b;
}

function actionsCell(confId, p) {
  const td = el("td");
  const base = `/api/v1/conferences/${encodeURIComponent(confId)}/participants/${encodeURIComponent(p.id)}`;
  td.append(
    actionButton(p.muted ? "Unmute" : "Mute", p.muted ? "unmute" : "mute",
      () => act("POST", `${base}/${p.muted ? "unmute" : "mute"}`)),
    actionButton(p.deaf ? "Undeaf" : "Deaf", p.deaf ? "undeaf" : "deaf",
      () => act("POST", `${base}/${p.deaf ? "undeaf" : "deaf"}`)),
    actionButton("Kick", "kick", () => {
      if (confirm(`Remove ${p.display || p.uri} from the conference?`)) act("DELETE", base);
    }),
  );
  return td;
}

async function act(method, path, body) {
  $("conf-error").textContent = "";
  try {
    await api(method, path, body);
  } catch (err) {
    $("conf-error").textContent = err.status === 403 ? "This token may only watch." : err.message;
  }
  scheduleRefresh(0);
}

function applyRole() {
  const viewer = state.role === "viewer";
  for (const e of document.querySelectorAll("[data-write]")) {
    for (const control of e.matches("form") ? e.querySelectorAll("input, button") : [e]) control.disabled = viewer;
  }
}

$("lock").addEventListener("click", () => {
  const locked = $("lock").dataset.locked === "1";
  act("POST", `/api/v1/conferences/${encodeURIComponent(state.confId)}/${locked ? "unlock" : "lock"}`);
});
$("end").addEventListener("click", () => {
  if (confirm("End this conference for everybody?")) {
    act("DELETE", `/api/v1/conferences/${encodeURIComponent(state.confId)}`);
  }
});
$("invite-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const uri = $("invite-uri").value.trim();
  act("POST", `/api/v1/conferences/${encodeURIComponent(state.confId)}/participants`, { uri });
  $("invite-uri").value = "";
});

// ---- live updates -------------------------------------------------------------------------------------

function scheduleRefresh(delay) {
  if (state.refreshTimer !== null) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    if (state.view === "list-view") loadList();
    else if (state.view === "conference-view") loadConference();
  }, delay);
}

function onEvent(kind, data) {
  if (kind === "message-relayed") { // the live message count (at most one event a second per conference)
    const count = $("conf-messages");
    if (state.view === "conference-view" && data.conference === state.confId && count && data.data) {
      count.textContent = String(Number(data.data.count) || 0);
    }
    return;
  }
  if (kind === "participant-speaking" && state.view === "conference-view" && data.conference === state.confId) {
    const row = document.querySelector(`tr[data-participant="${CSS.escape(String(data.participant))}"]`);
    const dot = row && row.querySelector(".speaking-dot");
    if (dot) {
      const on = Boolean(data.data && data.data.speaking);
      dot.className = on ? "speaking-dot on" : "speaking-dot";
      dot.dataset.speaking = on ? "1" : "0";
      return;
    }
  }
  if (state.view === "list-view" || data.conference === state.confId) scheduleRefresh(100);
}

async function openStream() {
  const ctl = new AbortController();
  state.stream = ctl;
  let delay = 1000;
  while (state.stream === ctl) {
    try {
      const resp = await fetch("/api/v1/events", {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
        signal: ctl.signal,
      });
      if (resp.status === 401) {
        signOut("the token was refused");
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`events: HTTP ${resp.status}`);
      setStatus(`signed in (${state.role}), live`);
      delay = 1000;
      scheduleRefresh(0); // catch up on whatever happened while the stream was down
      await readStream(resp.body.getReader());
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    if (state.stream !== ctl) return;
    setStatus(`signed in (${state.role}), reconnecting`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

async function readStream(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      let kind = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue; // keep-alive comment
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length === 0) continue;
      try {
        onEvent(kind, JSON.parse(data.join("\n")));
      } catch (err) {
        // a malformed event is ignored; the next refresh brings the truth
      }
    }
  }
}

// ---- start --------------------------------------------------------------------------------------------

(function start() {
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    signIn(saved).catch(() => signOut());
  } else {
    show("login-view");
  }
})();
