// The console: sign-in, the dispatcher's queue, the caller's to-do list, a ticket's page and the
// supervisor's dashboard.
// Every figure and list comes from /api/v1 with the signed-in user's token; /console/stream
// says when tickets have changed, and the page shown reloads what it shows.

import { hasText, lang, setLang, t, translateStatic } from "./i18n.js";

const API = "/api/v1";
const view = document.getElementById("view");
const session = {
  get token() { return sessionStorage.getItem("gridwork.token"); },
  get refresh() { return sessionStorage.getItem("gridwork.refresh"); },
  save(issued) {
    sessionStorage.setItem("gridwork.token", issued.access_token);
    sessionStorage.setItem("gridwork.refresh", issued.refresh_token);
  },
  clear() { sessionStorage.clear(); },
};
let me = null;
let config = { map_tiles_url: "", map_attribution: "", timezone: "Asia/Shanghai" };
let names = { categories: {}, departments: {} }; // code -> name, loaded after sign-in
let onChange = null; // what the page shown reloads when tickets change
let disposers = []; // maps and blob URLs of the page shown, released when it is drawn again

function dispose() {
  for (const release of disposers.splice(0)) release();
}
let stream = null;

// --- helpers ------------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false && value != null) element.setAttribute(name, value);
  }
  element.append(...children.flat(Infinity).filter((c) => c != null));
  return element;
}

function when(value) {
  if (!value) return "";
  return new Date(value).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: config.timezone, dateStyle: "short", timeStyle: "short",
  });
}

function nameOf(kind, code) {
  return names[kind][code]?.name ?? code;
}

function percent(rate) {
  return rate == null ? "—" : `${(rate * 100).toFixed(1)}%`;
}

// A date (YYYY-MM-DD) moved by `days`.
function addDays(date, days) {
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + days);
  return day.toISOString().slice(0, 10);
}

// Today's local date by the service's clock (YYYY-MM-DD), moved by `offsetDays`.
function localDay(offsetDays = 0) {
  const today = config.today ?? new Date().toLocaleDateString("en-CA", { timeZone: config.timezone });
  return addDays(today, offsetDays);
}

// The `count` months up to the one of `date` (YYYY-MM-DD), oldest first, as YYYY-MM.
function lastMonths(date, count) {
  const [year, month] = date.split("-").map(Number);
  return Array.from({ length: count }, (_, i) => {
    const months = year * 12 + (month - 1) - (count - 1 - i);
    return `${Math.floor(months / 12)}-${String((months % 12) + 1).padStart(2, "0")}`;
  });
}

// 12.5 (at most one decimal), for minutes.
function decimal(value) {
  return String(Math.round(value * 10) / 10);
}

function distance(metres) {
  return metres >= 1000 ? `${(metres / 1000).toFixed(2)} km` : `${Math.round(metres)} m`;
}

// What went wrong, as the console says it: the problem's title in the interface's language
// (by its type, else its status), then the API's own detail, which names what was refused.
function problemText(status, body, title = null) {
  const type = typeof body?.type === "string" ? body.type.split("/").pop() : "";
  const heading = title ?? (hasText(`problem.${type}`) ? t(`problem.${type}`)
    : hasText(`problem.${status}`) ? t(`problem.${status}`) : body?.title || `HTTP ${status}`);
  const detail = body?.detail && body.detail !== body.title ? body.detail : "";
  return detail ? `${heading}${t("problem.separator")}${detail}` : heading;
}

class Problem extends Error {
  constructor(status, body) {
    super(status === 0 ? body.detail : problemText(status, body));
    this.status = status;
    this.errors = body?.errors || [];
  }
}

async function refreshToken() {
  if (!session.refresh) return false;
  const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: session.refresh });
  const response = await fetch(`${API}/auth/token`, { method: "POST", body: form });
  if (!response.ok) return false;
  session.save(await response.json());
  return true;
}

// A call of the API as the signed-in user: the parsed body, or a Problem. A 401 refreshes the
// token once, then sends the user to sign in again.
async function api(path, { method = "GET", body, raw = false, retried = false } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Problem(0, { detail: t("error.network") });
  }
  if (response.status === 401 && !retried && (await refreshToken())) {
    return api(path, { method, body, raw, retried: true });
  }
  if (response.status === 401) {
    signOut();
    throw new Problem(401, { detail: "" });
  }
  if (!response.ok) {
    throw new Problem(response.status, await response.json().catch(() => null));
  }
  return raw ? response : response.json();
}

function query(values) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    for (const one of [value].flat()) {
      if (one !== "" && one != null) params.append(name, one);
    }
  }
  return params.toString();
}

// Loads of one page may overlap (a change, then another, or a filter changed): only the last
// one asked draws. `latest()` at the start of a load gives its `current()`, true while no later
// load has started.
function lastAsked() {
  let asked = 0;
  return () => {
    const mine = ++asked;
    return () => mine === asked;
  };
}

// Draws `nodes` into `container` unless they look the same as what it shows: a live reload
// that replaced the rows under the pointer would lose a click that had begun on them (pressed
// on the old row, released on the new one), and a busy district's queue reloads every 2 s.
function redraw(container, ...nodes) {
  const shown = container.children;
  if (shown.length === nodes.length && nodes.every((node, i) => shown[i].isEqualNode(node))) return;
  container.replaceChildren(...nodes);
}

function showError(container, error) {
  container.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
}

// --- live updates --------------------------------------------------------------------------

let lastMark = null; // the newest change the page has reloaded for
let pendingReload = null;
let lastReload = 0;
const RELOAD_GAP_MS = 2000;

// Reloads the page shown once for a burst of changes, and at most every RELOAD_GAP_MS: a
// district's queue reads thousands of tickets.
function reloadSoon() {
  if (pendingReload) return;
  const wait = Math.max(200, lastReload + RELOAD_GAP_MS - Date.now());
  pendingReload = setTimeout(() => {
    pendingReload = null;
    lastReload = Date.now();
    onChange?.();
  }, wait);
}
let retryDelay = 1000;
let listening = 0; // which call of listen() is current: an older one gives up
let reconnect = null;

function stopListening() {
  listening += 1;
  clearTimeout(reconnect);
  stream?.close();
  stream = null;
}

// The stream is opened with a stream ticket (good for a minute, and for nothing else), never
// with the access token: a new ticket before each connection, so the page reconnects itself
// instead of letting the browser retry with the old one.
async function listen() {
  stopListening();
  const mine = listening;
  const live = document.getElementById("live");
  const shown = (on) => { live.dataset.t = on ? "live.on" : "live.off"; live.classList.toggle("on", on); translateStatic(); };
  const again = () => {
    shown(false);
    reconnect = setTimeout(() => { if (mine === listening) listen(); }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000); // back to 1 s once a connection opens
  };
  if (!session.token) return;
  let ticket;
  try {
    ticket = (await api("/console/stream-ticket", { method: "POST" })).ticket;
  } catch (error) {
    // Offline or the server down: again later. Refused (403, a grid worker): never.
    if (mine === listening && session.token && error.status !== 403) again();
    return;
  }
  if (mine !== listening) return;
  const opened = new EventSource(`/console/stream?ticket=${encodeURIComponent(ticket)}`);
  stream = opened;
  opened.addEventListener("open", () => { shown(true); retryDelay = 1000; });
  opened.addEventListener("error", () => {
    if (stream !== opened) return;
    opened.close(); // the stream ended or failed: a new ticket, then again
    stream = null;
    again();
  });
  opened.addEventListener("tickets", (event) => {
    if (event.data === lastMark) return;
    lastMark = event.data;
    reloadSoon();
  });
}

// --- sign-in -------------------------------------------------------------------------------

function signOut() {
  session.clear();
  stopListening();
  me = null;
  location.hash = "#/login";
}

// The sign-out button: the server revokes the session's refresh token first, then the page
// forgets its tokens, whether or not the server could be told (offline, or an older server).
async function logOut() {
  const refresh = session.refresh;
  if (refresh) {
    await fetch(`${API}/auth/logout`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${session.token}` },
      body: JSON.stringify({ refresh_token: refresh }),
      signal: AbortSignal.timeout(5000),
    }).catch(() => null);
  }
  signOut();
}

function loginPage() {
  document.getElementById("bar").hidden = true;
  const message = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "login", onsubmit: async (event) => {
    event.preventDefault();
    message.textContent = "";
    const data = new URLSearchParams(new FormData(form));
    const response = await fetch(`${API}/auth/token`, { method: "POST", body: data }).catch(() => null);
    if (!response) { message.textContent = t("error.network"); return; }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const refused = response.status === 401 || response.status === 422;
      message.textContent = problemText(response.status, body, refused ? t("login.failed") : null);
      return;
    }
    session.save(body);
    await start();
  } },
    h("h1", {}, t("login.title")),
    h("label", {}, t("login.username"), h("input", { name: "username", autocomplete: "username", required: true })),
    h("label", {}, t("login.password"), h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit" }, t("login.submit")),
    message,
  );
  view.replaceChildren(form);
}

// --- the queue -----------------------------------------------------------------------------

const URGENCY = { red: 0, yellow: 1, green: 2 };

function byUrgency(a, b) {
  return (b.urgent - a.urgent)
    || ((URGENCY[a.warning] ?? 3) - (URGENCY[b.warning] ?? 3))
    || ((a.deadline_at ? Date.parse(a.deadline_at) : Infinity) - (b.deadline_at ? Date.parse(b.deadline_at) : Infinity))
    || (a.id - b.id);
}

// The dispatcher's buckets of open tickets (a deadline runs, hence a warning, only on open
// ones): tickets out with a grid worker to be checked and tickets fed back, to verify (neither
// a handler's), urged ones (督办), and an escalated-in bucket only above community level.
function buckets() {
  const list = [
    ["reported", (ticket) => ticket.status === "reported"],
    ["checking", (ticket) => ticket.status === "checking"],
    ["dispatched", (ticket) => ticket.status === "dispatched"],
    ["in_progress", (ticket) => ticket.status === "in_progress"],
    ["feedback", (ticket) => ticket.status === "feedback"],
    ["yellow", (ticket) => ticket.warning === "yellow"],
    ["red", (ticket) => ticket.warning === "red"],
    ["urged", (ticket) => ticket.urge_count > 0],
  ].filter(([name]) => !(["checking", "feedback"].includes(name) && me.role === "handler"));
  if (me.unit && me.unit.level !== "community" && me.unit.level !== "grid") {
    list.push(["escalated", (ticket) => ticket.level === me.unit.level]);
  }
  return list;
}

const OPEN_STATUSES = ["reported", "checking", "dispatched", "in_progress", "suspended", "feedback"];
const QUEUE_LIMIT = 5000; // open tickets read; the list shows the most urgent of a bucket

// Every ticket of a list (page by page, up to QUEUE_LIMIT): {items, more}.
async function everyTicket(filters) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(`tickets?${query({ ...filters, limit: 500, cursor })}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < QUEUE_LIMIT);
  return { items, more: Boolean(cursor) };
}
const queueState = { bucket: "reported", category: "", grid: "", department: "" };

async function queuePage() {
  const filters = h("div", { class: "filters" });
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const list = h("div", { class: "list" });
  view.replaceChildren(h("section", { class: "queue" }, filters, tabs, list));

  const select = (name, items, label) => h("label", {}, t(label),
    h("select", { name, onchange: (event) => { queueState[name] = event.target.value; load(); } },
      h("option", { value: "" }, t("filter.all")),
      items.map((item) => h("option", { value: item.code, selected: queueState[name] === item.code }, `${item.name} (${item.code})`))));
  filters.replaceChildren(
    select("category", Object.values(names.categories), "filter.category"),
    h("label", {}, t("filter.grid"), h("input", { name: "grid", value: queueState.grid, placeholder: "GC01-1",
      onchange: (event) => { queueState.grid = event.target.value.trim(); load(); } })),
    select("department", Object.values(names.departments), "filter.department"),
  );

  // The tabs are drawn once and a reload updates their counts: a click on one is never lost
  // to a redraw.
  const named = buckets();
  const counts = new Map(named.map(([name]) => [name, h("span", { class: "count" })]));
  tabs.replaceChildren(...named.map(([name]) => h("button", {
    type: "button", role: "tab", class: `tab ${name}`, "data-bucket": name, "aria-selected": String(name === queueState.bucket),
    onclick: () => { queueState.bucket = name; load(); },
  }, t(`bucket.${name}`), counts.get(name))));

  const latest = lastAsked();
  async function load() {
    const current = latest();
    try {
      const open = await everyTicket({
        status: OPEN_STATUSES, category: queueState.category,
        department: queueState.department, org_unit: queueState.grid,
      });
      if (!current()) return;
      const held = named.map(([name, holds]) => [name, open.items.filter(holds)]);
      for (const button of tabs.children) button.setAttribute("aria-selected", String(button.dataset.bucket === queueState.bucket));
      for (const [name, tickets] of held) counts.get(name).textContent = `${tickets.length}${open.more ? "+" : ""}`;
      const shown = held.find(([name]) => name === queueState.bucket)?.[1] ?? held[0][1];
      redraw(list, ticketTable(shown.sort(byUrgency)));
    } catch (error) {
      if (current()) showError(list, error);
    }
  }
  onChange = load;
  await load();
}

// --- the to-do list ------------------------------------------------------------------------

// What waits for the caller's next step (`awaiting=me`): a supervisor's is always empty, so
// they are pointed at the urged tickets instead.
async function todoPage() {
  const heading = h("h1", {}, t("todo.title"));
  const list = h("div", { class: "list" });
  view.replaceChildren(h("section", { class: "todo" }, heading, list));
  const latest = lastAsked();
  async function load() {
    const current = latest();
    try {
      const mine = await everyTicket({ awaiting: "me" });
      if (!current()) return;
      heading.replaceChildren(`${t("todo.title")} `,
        h("span", { class: "count" }, `${mine.items.length}${mine.more ? "+" : ""}`));
      const urged = me.role === "supervisor"
        ? [h("p", { class: "empty" }, `${t("todo.supervisor")} `,
          h("a", { href: "#/queue", onclick: () => { queueState.bucket = "urged"; } }, t("bucket.urged")))]
        : [];
      redraw(list, ticketTable(mine.items.sort(byUrgency)), ...urged);
    } catch (error) {
      if (current()) showError(list, error);
    }
  }
  onChange = load;
  await load();
}

const SHOWN_ROWS = 300;

// 督办 ×N and 重办 ×N beside a ticket's number.
function badges(ticket) {
  return [
    ticket.urge_count ? h("span", { class: "badge urged", "data-badge": "urged" }, t("ticket.urged", { n: ticket.urge_count })) : null,
    ticket.reopen_count ? h("span", { class: "badge reopened", "data-badge": "reopened" }, t("ticket.reopened", { n: ticket.reopen_count })) : null,
  ];
}

function ticketTable(all) {
  const tickets = all.slice(0, SHOWN_ROWS);
  if (!tickets.length) return h("p", { class: "empty" }, t("empty"));
  const columns = ["number", "status", "warning", "category", "grid", "description", "reported_at", "deadline_at"];
  return h("div", {},
    h("table", { class: "tickets" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, t(`col.${c}`))))),
      h("tbody", {}, tickets.map((ticket) => h("tr", {
        "data-ticket": ticket.id, class: ticket.urgent ? "urgent" : "",
        onclick: () => { location.hash = `#/tickets/${ticket.id}`; },
      },
        h("td", {}, h("a", { href: `#/tickets/${ticket.id}` }, ticket.number), " ", badges(ticket)),
        h("td", {}, t(`status.${ticket.status}`)),
        h("td", {}, ticket.warning ? h("span", { class: `dot ${ticket.warning}` }, t(`warning.${ticket.warning}`)) : ""),
        h("td", {}, nameOf("categories", ticket.category_code)),
        h("td", {}, ticket.grid_code),
        h("td", { class: "description" }, ticket.description),
        h("td", {}, when(ticket.reported_at)),
        h("td", {}, when(ticket.deadline_at)),
      )))),
    all.length > SHOWN_ROWS ? h("p", { class: "more" }, t("more", { n: SHOWN_ROWS })) : null);
}

// --- a ticket ------------------------------------------------------------------------------

// The fields of each action's form (API.md's bodies); `note` for every action.
const ACTION_FIELDS = {
  dispatch: ["department_code", "assisting_department_codes"],
  merge: ["duplicate_of"],
  request_extension: ["time_limit"],
  verify: ["passed"],
  rate: ["score", "comment"],
};
const NOTE_REQUIRED = new Set(["reject", "return", "escalate", "refute", "assist", "urge", "reopen"]);

async function ticketPage(id) {
  const page = h("section", { class: "ticket" });
  view.replaceChildren(page);
  // `live`: reloaded because tickets changed, which never redraws under a user's typing (an
  // action form open when the reload starts or opened while it loads).
  async function load(live = false) {
    const typing = () => live && page.querySelector("form");
    if (typing()) return;
    let ticket, history, photos, grid, covering = null;
    try {
      [ticket, history, photos] = await Promise.all([
        api(`tickets/${id}`), api(`tickets/${id}/history?limit=500`), api(`tickets/${id}/attachments`),
      ]);
      grid = await api(`org-units/${encodeURIComponent(ticket.grid_code)}`).catch(() => null);
      if (ticket.allowed_actions.includes("dispatch")) covering = await coveringUnits(grid);
    } catch (error) {
      if (!typing()) showError(page, error);
      return;
    }
    if (typing()) return;
    dispose();
    page.replaceChildren(
      h("p", {}, h("a", { href: "#/queue" }, `← ${t("ticket.back")}`)),
      h("div", { class: "columns" },
        h("div", {}, details(ticket), actionsPanel(ticket, load, covering), timeline(history.items)),
        h("div", {}, h("h2", {}, t("ticket.map")), ticketMap(ticket, grid), photoStrip(photos))));
  }
  onChange = () => load(true);
  await load();
}

function details(ticket) {
  const rows = [
    ["col.status", t(`status.${ticket.status}`)],
    ["col.warning", ticket.warning ? t(`warning.${ticket.warning}`) : "—"],
    ["col.category", nameOf("categories", ticket.category_code)],
    ["col.grid", `${ticket.grid_code} · ${ticket.owner_unit_code} (${t(`level.${ticket.level}`)})`],
    ["col.department", ticket.department_code ? nameOf("departments", ticket.department_code) : "—"],
    ["ticket.assists", ticket.assists.length ? assistList(ticket.assists) : "—"],
    ["col.reported_at", `${when(ticket.reported_at)} · ${ticket.reporter ?? ticket.source}`],
    ["ticket.checked_at", when(ticket.checked_at) || "—"],
    ["col.deadline_at", when(ticket.deadline_at) || "—"],
    ["ticket.urge_count", String(ticket.urge_count)],
    ["ticket.reopen_count", String(ticket.reopen_count)],
  ];
  return h("div", { class: "card" },
    h("h1", {}, `${ticket.number} `, ticket.urgent ? h("span", { class: "badge" }, t("ticket.urgent")) : null, " ", badges(ticket)),
    h("p", { class: "description" }, ticket.description),
    h("dl", {}, rows.map(([label, value]) => [h("dt", {}, t(label)), h("dd", { "data-row": label.split(".").pop() }, value)])),
    ticket.possible_duplicates.length ? h("p", {}, `${t("ticket.duplicates")}: `,
      ticket.possible_duplicates.map((d) => h("a", { href: `#/tickets/${d.id}` }, `${d.number} (${d.distance_m} m) `))) : null);
}

// The assisting departments' parts (协办): pending, or answered when and how.
function assistList(assists) {
  return h("ul", { class: "assists" }, assists.map((part) => h("li", {
    "data-assist": part.department_code, class: part.done_at ? "done" : "pending",
  },
    nameOf("departments", part.department_code), " · ",
    part.done_at ? `${t("ticket.assist_done")} ${when(part.done_at)}` : t("ticket.assist_pending"),
    part.note ? h("p", {}, part.note) : null)));
}

// The org units whose departments a ticket of `grid` may go to: its community, town and
// district, as the API decides (a set of codes), or null when they cannot be read.
const orgUnits = new Map(); // code -> the org unit, read once
async function coveringUnits(grid) {
  const codes = new Set();
  try {
    for (let code = grid?.parent_code; code; code = orgUnits.get(code).parent_code) {
      if (!orgUnits.has(code)) orgUnits.set(code, await api(`org-units/${encodeURIComponent(code)}`));
      codes.add(code);
    }
  } catch {
    return null;
  }
  return codes.size ? codes : null;
}

// `covering`: the org units whose departments the dispatch form offers (null: every one).
function field(name, ticket, covering = null) {
  const label = (input) => h("label", { "data-field": name }, t(`field.${name}`), input, h("span", { class: "field-error" }));
  const asked = new Set(ticket.assists.map((part) => part.department_code));
  const offered = Object.values(names.departments)
    .filter((d) => !covering || covering.has(d.org_unit_code) || asked.has(d.code));
  if (name === "assisting_department_codes") { // the form then hides the lead (excludeLead)
    return h("fieldset", { "data-field": name, class: "assisting" }, h("legend", {}, t(`field.${name}`)),
      offered.map((d) => h("label", { "data-department": d.code },
        h("input", { name, type: "checkbox", value: d.code, checked: asked.has(d.code) }), `${d.name} (${d.code})`)),
      h("span", { class: "field-error" }));
  }
  if (name === "department_code") {
    return label(h("select", { name },
      h("option", { value: "" }, t("field.default_department")),
      offered.map((d) => h("option", { value: d.code }, `${d.name} (${d.code})`))));
  }
  if (name === "duplicate_of") return label(h("input", { name, type: "number", min: 1 }));
  if (name === "passed") return label(h("input", { name, type: "checkbox", checked: true }));
  if (name === "score") return label(h("input", { name, type: "number", min: 1, max: 5, value: 5 }));
  if (name === "time_limit") {
    return h("label", { "data-field": name }, t("field.time_limit"),
      h("input", { name: "time_limit_value", type: "number", min: 1, value: 1 }),
      h("select", { name: "time_limit_unit" }, ["hours", "working_hours", "working_days", "minutes"].map((u) => h("option", { value: u }, t(`unit.${u}`)))),
      h("span", { class: "field-error" }));
  }
  return label(h("textarea", { name, rows: 2 }));
}

function bodyOf(form, ticket) {
  const data = new FormData(form);
  const body = { expected_version: ticket.version };
  for (const [name, value] of data.entries()) {
    if (["time_limit_value", "time_limit_unit", "assisting_department_codes"].includes(name) || value === "") continue;
    body[name] = ["duplicate_of", "score"].includes(name) ? Number(value) : value;
  }
  // The whole list as ticked, [] included: a dispatch replaces the assisting departments.
  if (form.querySelector('[data-field="assisting_department_codes"]')) {
    body.assisting_department_codes = data.getAll("assisting_department_codes");
  }
  if (form.elements.passed) body.passed = form.elements.passed.checked;
  if (data.get("time_limit_value")) {
    body.time_limit = { value: Number(data.get("time_limit_value")), unit: data.get("time_limit_unit") };
  }
  return body;
}

function actionsPanel(ticket, reload, covering) {
  const panel = h("div", { class: "card actions" }, h("h2", {}, t("ticket.actions")));
  if (!ticket.allowed_actions.length) {
    panel.append(h("p", { class: "empty" }, t("ticket.no_actions")));
    return panel;
  }
  const formSlot = h("div");
  const buttons = ticket.allowed_actions.map((action) => h("button", {
    type: "button", "data-action": action, onclick: () => openForm(action),
  }, t(`action.${action}`)));
  panel.append(h("div", { class: "buttons" }, buttons), formSlot);

  function openForm(action) {
    const message = h("p", { class: "error", role: "alert" });
    const names = [...(ACTION_FIELDS[action] ?? []), "note"];
    const form = h("form", { "data-form": action, onsubmit: async (event) => {
      event.preventDefault();
      message.textContent = "";
      form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
      try {
        await api(`tickets/${ticket.id}/actions/${action}`, { method: "POST", body: bodyOf(form, ticket) });
        formSlot.replaceChildren(h("p", { class: "ok", role: "status" }, t("done", { action: t(`action.${action}`) })));
        await reload();
      } catch (error) {
        message.textContent = error.message;
        for (const problem of error.errors ?? []) { // each error in place, beside its field
          const name = problem.loc?.[1];
          const slot = form.querySelector(`[data-field="${name}"] .field-error`);
          if (slot) slot.textContent = problem.msg;
        }
      }
    } },
      h("h3", {}, t(`action.${action}`)),
      names.map((name) => field(name, ticket, covering)),
      message,
      h("div", { class: "buttons" },
        h("button", { type: "submit" }, t("submit")),
        h("button", { type: "button", onclick: () => formSlot.replaceChildren() }, t("cancel"))));
    if (NOTE_REQUIRED.has(action)) form.elements.note.required = true;
    if (action === "dispatch") excludeLead(form, ticket);
    formSlot.replaceChildren(form);
  }
  return panel;
}

// The lead department (the one chosen, else the category's default) cannot also assist.
function excludeLead(form, ticket) {
  const sync = () => {
    const lead = form.elements.department_code.value || names.categories[ticket.category_code]?.default_department_code;
    for (const box of form.querySelectorAll('input[name="assisting_department_codes"]')) {
      box.disabled = box.value === lead;
      if (box.disabled) box.checked = false;
      box.closest("label").hidden = box.disabled;
    }
  };
  form.elements.department_code.addEventListener("change", sync);
  sync();
}

// What a history row adds to its action: where a dispatch went, which department assisted,
// what a reopen undid.
function historyDetails(entry) {
  const d = entry.details ?? {};
  const departments = (codes) => codes.map((code) => nameOf("departments", code)).join("、");
  if (entry.action === "dispatch" && d.department_code) {
    const assisting = d.assisting_department_codes?.length ? ` (${t("history.assisting")}: ${departments(d.assisting_department_codes)})` : "";
    return ` · ${departments([d.department_code])}${assisting}`;
  }
  if (entry.action === "assist" && d.department_code) return ` · ${departments([d.department_code])}`;
  if (entry.action === "reopen" && d.closed_at) {
    return ` · ${t("history.closed_at")} ${when(d.closed_at)}${d.rating != null ? ` · ${t("history.rating")} ${d.rating}` : ""}`;
  }
  return "";
}

function timeline(items) {
  return h("div", { class: "card" }, h("h2", {}, t("ticket.history")),
    h("ol", { class: "timeline" }, items.map((entry) => h("li", {},
      h("time", {}, when(entry.at)), " ",
      h("strong", {}, t(`action.${entry.action}`)), ` · ${entry.actor}`, historyDetails(entry),
      entry.from_status && entry.from_status !== entry.to_status ? ` · ${t(`status.${entry.from_status}`)} → ${t(`status.${entry.to_status}`)}` : "",
      entry.from_level && entry.from_level !== entry.to_level ? ` · ${t(`level.${entry.from_level}`)} → ${t(`level.${entry.to_level}`)}` : "",
      entry.note ? h("p", {}, entry.note) : null))));
}

// A map of a grid's boundary (on the configured tiles, else a blank background) and of the
// `layers` given, all of them in view. Released with the page shown, or earlier by `releases`
// (an array of release functions).
function mapOf(grid, layers, { id, releases = disposers } = {}) {
  const box = h("div", { class: "map", id });
  let map = null;
  let released = false;
  releases.push(() => { released = true; map?.remove(); });
  requestAnimationFrame(() => {
    if (released) return;
    map = L.map(box, { attributionControl: Boolean(config.map_attribution) });
    if (config.map_tiles_url) {
      L.tileLayer(config.map_tiles_url, { attribution: config.map_attribution, maxZoom: 19 }).addTo(map);
    }
    const boundary = grid?.boundary ? [L.geoJSON(grid.boundary, { style: { color: "#2c7be5", weight: 2, fillOpacity: 0.08 } })] : [];
    const shown = L.featureGroup([...boundary, ...layers]); // the grid below
    const bounds = shown.getBounds();
    if (bounds.isValid()) map.fitBounds(bounds, { padding: [20, 20], maxZoom: 16 }); // a view before any layer
    else map.fitWorld();
    shown.addTo(map);
  });
  return box;
}

function ticketMap(ticket, grid) {
  return mapOf(grid, [L.circleMarker([ticket.lat, ticket.lon], { radius: 8, color: "#c0392b", fillOpacity: 0.8 })], { id: "map" });
}

// A worker's track of a day as a line, its start and end marked.
function trackMap(grid, feature, releases) {
  const points = (feature.geometry?.coordinates ?? []).map(([lon, lat]) => [lat, lon]);
  const mark = (at, kind, color) => L.circleMarker(at, { radius: 7, color, fillOpacity: 0.9, className: `track-${kind}` })
    .bindTooltip(t(`track.${kind}`));
  const layers = points.length < 2 ? [] : [
    L.polyline(points, { color: "#e67e22", weight: 4, className: "track-line" }),
    mark(points[0], "start", "#27ae60"),
    mark(points.at(-1), "end", "#c0392b"),
  ];
  return mapOf(grid, layers, { releases });
}

// A file of the API (which wants the token) as a blob: URL, released with the page shown.
async function blobUrl(path) {
  const url = URL.createObjectURL(await (await api(path, { raw: true })).blob());
  disposers.push(() => URL.revokeObjectURL(url));
  return url;
}

function photoStrip(photos) {
  const strip = h("div", { class: "photos" });
  if (!photos.length) strip.append(h("p", { class: "empty" }, t("ticket.no_photos")));
  for (const photo of photos) { // the API wants the token: fetched, then shown as blobs
    const image = h("img", { alt: photo.stage ?? "" });
    const link = h("a", { target: "_blank" }, image);
    blobUrl(`attachments/${photo.id}/thumbnail`)
      .then((url) => { image.src = url; })
      .catch(() => { image.alt = "×"; });
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      window.open(await blobUrl(`attachments/${photo.id}`), "_blank");
    });
    strip.append(link);
  }
  return h("div", { class: "card" }, h("h2", {}, t("ticket.photos")), strip);
}

// --- the dashboard -------------------------------------------------------------------------

const RATES = ["closure_rate", "on_time_closure_rate", "rework_rate", "in_community_rate", "satisfaction_rate", "reopen_rate"];
const dashState = { day: null };

async function download(path, name) {
  h("a", { href: await blobUrl(path), download: name }).click();
}

async function dashboardPage() {
  const unit = me.org_unit_code;
  const page = h("section", { class: "dashboard" });
  view.replaceChildren(page);
  if (!unit) { page.append(h("p", { class: "empty" }, "—")); return; }
  dashState.day ??= localDay();
  const first = `${localDay().slice(0, 4)}-01-01`;
  const to = localDay(1);
  const months = lastMonths(localDay(), 12); // the trend's, oldest first: YYYY-MM
  const trendFrom = `${months[0]}-01`;
  let chart = null;
  const track = { slot: h("div", { class: "track" }), grid: null, worker: null, asked: 0, releases: [] };
  disposers.push(() => closeTrack());

  function closeTrack() {
    for (const release of track.releases.splice(0)) release();
    track.asked += 1; // answers still on their way are dropped
    track.grid = null;
    track.slot.replaceChildren();
  }

  // A grid's tracks on the chosen day: the workers who clocked in there that day to pick
  // from (its own workers first), or any username typed; `worker` first when given.
  async function openTrack(grid, worker = null) {
    closeTrack();
    const asked = track.asked;
    const day = dashState.day;
    Object.assign(track, { grid, worker });
    try {
      const [unit, clockIns] = await Promise.all([
        api(`org-units/${encodeURIComponent(grid)}`),
        api(`clock-ins?${query({ grid, from: day, to: addDays(day, 1), limit: 500 })}`),
      ]);
      if (asked !== track.asked) return;
      const ordered = [...clockIns.items].sort((a, b) => b.inside_grid - a.inside_grid);
      const seen = [...new Set(ordered.map((item) => item.worker))];
      const result = h("div");
      const typed = h("input", { name: "worker", placeholder: t("track.username"), autocomplete: "off" });
      const picker = h("div", { class: "workers" }, `${t("track.seen")}: `,
        seen.length ? seen.map((name) => h("button", { type: "button", "data-worker": name, onclick: () => show(name) }, name))
          : h("span", { class: "empty" }, t("track.none_seen")),
        h("form", { onsubmit: (event) => { event.preventDefault(); if (typed.value.trim()) show(typed.value.trim()); } },
          typed, h("button", { type: "submit" }, t("track.show"))));
      track.slot.replaceChildren(
        h("h3", {}, t("track.title", { grid, day }),
          h("button", { type: "button", class: "close", title: t("track.close"), onclick: closeTrack }, "×")),
        picker, result);

      async function show(name) {
        for (const release of track.releases.splice(0)) release();
        const mine = ++track.asked;
        track.worker = name;
        typed.value = seen.includes(name) ? "" : name;
        for (const button of picker.querySelectorAll("button[data-worker]")) {
          button.setAttribute("aria-pressed", String(button.dataset.worker === name));
        }
        try {
          const feature = await api(`patrol/tracks?${query({ worker: name, date: day })}`);
          if (mine !== track.asked) return;
          const figures = feature.properties;
          result.replaceChildren(
            h("p", { class: "figures" }, `${name} · `,
              `${t("track.points")} `, h("strong", { "data-figure": "points" }, String(figures.points)),
              ` · ${t("track.distance")} `, h("strong", { "data-figure": "distance" }, distance(figures.distance_m)),
              ` · ${t("track.minutes")} `, h("strong", { "data-figure": "minutes" }, t("track.min", { n: decimal(figures.minutes_in_grid) }))),
            ...(feature.geometry ? [] : [h("p", { class: "empty" }, t("track.none"))]),
            trackMap(unit, feature, track.releases));
        } catch (error) {
          if (mine === track.asked) showError(result, error);
        }
      }
      const first = worker ?? seen[0];
      if (first) await show(first);
    } catch (error) {
      if (asked === track.asked) showError(track.slot, error);
    }
  }

  // The frame is drawn once; a reload replaces only the figures under it, so that a click on a
  // tab or an export button is never lost to a redraw.
  const range = query({ org_unit: unit, from: first, to });
  const figures = h("div", { class: "dash-figures" });
  page.replaceChildren(
    dashboardTabs("dashboard"),
    h("h1", {}, `${t("dash.title")} · ${me.unit?.name ?? unit}`),
    h("p", {}, `${t("dash.period")}: ${first} – ${localDay()}`,
      h("span", { class: "grow" }),
      ["csv", "xlsx"].map((format) => h("button", {
        type: "button", "data-export": format,
        onclick: () => download(`${API}/stats/closure?${range}&group_by=org_unit&format=${format}&lang=${lang}`, `closure-${unit}.${format}`),
      }, `${t("dash.export")} ${format.toUpperCase()}`))),
    figures);

  const latest = lastAsked();
  async function load() {
    const current = latest();
    try {
      const [year, trend, ranking, coverage] = await Promise.all([
        api(`stats/closure?${range}&group_by=org_unit`),
        api(`stats/closure?${query({ org_unit: unit, from: trendFrom, to })}&group_by=month`),
        api(`stats/ranking?${range}`),
        api(`stats/patrol?${query({ org_unit: unit, date: dashState.day })}`),
      ]);
      if (!current()) return;
      const canvas = h("canvas", { id: "trend", height: 220 });
      figures.replaceChildren(
        h("div", { class: "kpis" },
          h("div", { class: "kpi", "data-kpi": "reported" }, h("span", {}, t("dash.reported")), h("strong", {}, String(year.totals.reported))),
          RATES.map((rate) => h("div", { class: "kpi", "data-kpi": rate }, h("span", {}, t(`dash.${rate}`)), h("strong", {}, percent(year.totals[rate]))))),
        h("div", { class: "columns" },
          h("div", { class: "card" }, h("h2", {}, t("dash.trend")), canvas),
          h("div", { class: "card" }, h("h2", {}, t("dash.ranking")), rankingTable(ranking))),
        h("div", { class: "card coverage" }, h("h2", {}, t("dash.coverage")),
          h("label", {}, t("dash.day"), h("input", { type: "date", value: dashState.day, onchange: (event) => {
            dashState.day = event.target.value;
            load();
            if (track.grid) openTrack(track.grid, track.worker);
          } })),
          h("p", {}, `${t("dash.coverage_rate")}: `, h("strong", { "data-kpi": "coverage_rate" }, percent(coverage.totals.coverage_rate)),
            ` · ${t("dash.patrolled")} ${coverage.totals.patrolled}/${coverage.totals.grids} · ${t("dash.clock_ins")} ${coverage.totals.clock_ins}`),
          coverageTable(coverage.items, (grid) => openTrack(grid)),
          track.slot)); // kept as it is (its map too) when the figures are reloaded
      chart?.destroy();
      // The API lists only the months with tickets: the others are drawn empty.
      const byMonth = new Map(trend.items.map((item) => [item.key, item]));
      const series = (measure, empty) => months.map((month) => byMonth.get(month)?.[measure] ?? empty);
      chart = new Chart(canvas, {
        type: "line",
        data: {
          labels: months,
          datasets: [
            { label: t("dash.closure_rate"), data: series("closure_rate", null), yAxisID: "rate", borderColor: "#2c7be5" },
            { label: t("dash.on_time_closure_rate"), data: series("on_time_closure_rate", null), yAxisID: "rate", borderColor: "#27ae60" },
            { label: t("dash.reported"), data: series("reported", 0), yAxisID: "count", type: "bar", backgroundColor: "rgba(150,150,150,0.3)" },
          ],
        },
        options: { animation: false, responsive: true, scales: {
          rate: { position: "left", min: 0, max: 1, ticks: { callback: (v) => `${v * 100}%` } },
          count: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } },
        } },
      });
    } catch (error) {
      if (current()) showError(figures, error);
    }
  }
  onChange = load;
  await load();
}

// Each grid's patrol on the day, and a button opening its tracks.
function coverageTable(items, open) {
  if (!items.length) return null;
  return h("table", { class: "grids" },
    h("thead", {}, h("tr", {}, ["col.grid", "dash.clock_ins", "dash.workers", "dash.patrolled", "dash.track_minutes"]
      .map((key) => h("th", {}, t(key))), h("th"))),
    h("tbody", {}, items.map((item) => h("tr", { "data-grid": item.grid_code },
      h("td", {}, item.grid_code),
      h("td", {}, String(item.clock_ins)),
      h("td", {}, String(item.workers)),
      h("td", {}, item.patrolled ? "✓" : "—"),
      h("td", { "data-col": "track_minutes" }, decimal(item.track_minutes)),
      h("td", {}, h("button", { type: "button", "data-track": item.grid_code, onclick: () => open(item.grid_code) }, t("track.open")))))));
}

function rankingTable(ranking) {
  const items = ranking.items ?? [];
  if (!items.length) return h("p", { class: "empty" }, "—");
  return h("table", { class: "ranking" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, t("dash.key")), h("th", {}, t("dash.score")),
      RATES.slice(0, 3).map((rate) => h("th", {}, t(`dash.${rate}`))))),
    h("tbody", {}, items.map((item, i) => h("tr", {},
      h("td", {}, String(item.rank ?? i + 1)), h("td", { title: item.key ?? "" }, item.name ?? item.key ?? "—"),
      h("td", {}, item.score == null ? "—" : Number(item.score).toFixed(3)),
      RATES.slice(0, 3).map((rate) => h("td", {}, percent(item[rate])))))));
}

// --- appraisal (考核) ------------------------------------------------------------------------

// The dashboard's tabs: closure statistics, and the appraisal of each subject.
function dashboardTabs(current) {
  const tabs = [["dashboard", "tab.closure"], ["appraisal/grid_workers", "tab.grid_workers"], ["appraisal/departments", "tab.departments"]];
  return h("nav", { class: "dash-tabs" }, tabs.map(([path, key]) =>
    h("a", { href: `#/${path}`, "data-tab": path, "aria-current": path === current ? "page" : false }, t(key))));
}

// The figures each subject's league table shows beside its score; every one is in the exports.
const APPRAISAL_FIGURES = {
  grid_workers: ["reports", "valid_rate", "public_first", "missed_rate", "checks", "on_time_check_rate",
    "verifications", "on_time_verification_rate", "patrol_days"],
  departments: ["handled", "closure_rate", "on_time_rate", "reworked", "rework_rate", "reopened", "returned",
    "assists", "assists_done", "satisfaction_rate"],
};
const appraisalState = { from: null, last: null }; // the period: first and last day, inclusive

function figure(name, value) {
  if (value == null) return "—";
  return name.endsWith("_rate") ? percent(value) : String(value);
}

function points(value) {
  return value == null ? "—" : (Math.round(value * 100) / 100).toFixed(2);
}

// The item's key and its name as people know it.
function appraised(subject, item) {
  return subject === "grid_workers"
    ? { key: item.username, name: `${item.display_name}（${item.username}）` }
    : { key: item.department_code, name: item.name };
}

async function appraisalPage(subject) {
  const unit = me.org_unit_code;
  const page = h("section", { class: "dashboard appraisal" });
  view.replaceChildren(page);
  if (!unit) { page.append(h("p", { class: "empty" }, "—")); return; }
  appraisalState.from ??= `${localDay().slice(0, 4)}-01-01`;
  appraisalState.last ??= localDay();
  const result = h("div", { class: "card" });
  const trend = { slot: h("div", { class: "card trend", hidden: true }), key: null, asked: 0, chart: null };
  disposers.push(() => { trend.chart?.destroy(); trend.asked += 1; });
  const range = () => query({ subject, org_unit: unit, from: appraisalState.from, to: addDays(appraisalState.last, 1) });
  const exportAs = (format) => download(`${API}/stats/appraisal?${range()}&format=${format}&lang=${lang}`,
    `appraisal-${subject}-${unit}-${appraisalState.from}.${format}`);
  page.replaceChildren(
    dashboardTabs(`appraisal/${subject}`),
    h("h1", {}, `${t(`tab.${subject}`)} · ${me.unit?.name ?? unit}`),
    h("form", { class: "period", onsubmit: (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      appraisalState.from = form.get("from");
      appraisalState.last = form.get("last");
      load();
    } },
    h("label", {}, t("appraisal.from"), h("input", { type: "date", name: "from", required: true, value: appraisalState.from })),
    h("label", {}, t("appraisal.last"), h("input", { type: "date", name: "last", required: true, value: appraisalState.last })),
    h("button", { type: "submit" }, t("appraisal.show")),
    h("span", { class: "grow" }),
    ["csv", "xlsx"].map((format) => h("button", { type: "button", "data-export": format, onclick: () => exportAs(format) },
      `${t("dash.export")} ${format.toUpperCase()}`))),
    result, trend.slot);

  const latest = lastAsked();
  async function load() {
    const current = latest();
    try {
      const appraisal = await api(`stats/appraisal?${range()}`);
      if (!current()) return;
      result.replaceChildren(
        h("p", { class: "formula" }, t(`appraisal.formula.${subject}`), " ",
          h("span", { class: "weights" }, Object.entries(appraisal.weights)
            .map(([term, weight]) => `${t(`field.${term}`)} ${weight}`).join(" · "))),
        appraisalTable(subject, appraisal.items, showTrend));
    } catch (error) {
      if (current()) showError(result, error);
    }
  }

  // One worker's or department's last 12 months, a month an appraisal of the same area.
  async function showTrend(item) {
    const { key, name } = appraised(subject, item);
    const asked = ++trend.asked;
    trend.key = key;
    const months = lastMonths(localDay(), 12);
    trend.slot.hidden = false;
    trend.slot.replaceChildren(h("h2", {}, t("appraisal.trend_of", { name }),
      h("button", { type: "button", class: "close", title: t("track.close"), onclick: () => { trend.asked += 1; trend.slot.hidden = true; } }, "×")),
    h("canvas", { id: "appraisal-trend", height: 200 }));
    try {
      const monthly = await Promise.all(months.map((month, i) => api(`stats/appraisal?${query({
        subject, org_unit: unit, from: `${month}-01`, to: i + 1 < months.length ? `${months[i + 1]}-01` : `${addDays(`${month}-28`, 4).slice(0, 7)}-01`,
      })}`)));
      if (asked !== trend.asked) return;
      const rows = monthly.map((answer) => answer.items.find((row) => appraised(subject, row).key === key) ?? null);
      const terms = Object.keys(monthly[0].weights);
      const palette = ["#2c7be5", "#27ae60", "#e67e22", "#8e44ad"];
      trend.chart?.destroy();
      trend.chart = new Chart(trend.slot.querySelector("canvas"), {
        type: "line",
        data: {
          labels: months,
          datasets: [
            { label: t("dash.score"), data: rows.map((row) => row?.score ?? null), borderColor: "#c0392b", borderWidth: 3 },
            ...terms.map((term, i) => ({ label: t(`field.${term}`), data: rows.map((row) => (row?.[term] == null ? null : row[term] * 100)),
              borderColor: palette[i % palette.length], borderDash: [4, 3] })),
          ],
        },
        options: { animation: false, responsive: true, spanGaps: true, scales: { y: { min: 0, max: 100 } } },
      });
      trend.chart.canvas.dataset.drawn = key;
    } catch (error) {
      if (asked === trend.asked) showError(trend.slot, error);
    }
  }

  onChange = load;
  await load();
}

// The league table: rank, name, score and figures, and under each row on demand how its score
// was made, term by term.
function appraisalTable(subject, items, showTrend) {
  if (!items.length) return h("p", { class: "empty" }, t("appraisal.none"));
  const figures = APPRAISAL_FIGURES[subject];
  const columns = 4 + (subject === "grid_workers" ? 1 : 0) + figures.length;
  return h("table", { class: "league", "data-subject": subject },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, t("field.name")),
      subject === "grid_workers" ? h("th", {}, t("field.grid_code")) : null,
      h("th", {}, t("dash.score")), figures.map((name) => h("th", {}, t(`field.${name}`))), h("th"))),
    h("tbody", {}, items.map((item) => {
      const { key, name } = appraised(subject, item);
      const detail = h("tr", { class: "breakdown", hidden: true, "data-breakdown": key },
        h("td", { colspan: columns }, breakdown(item)));
      return [
        h("tr", { "data-key": key },
          h("td", {}, item.rank == null ? "—" : String(item.rank)),
          h("td", {}, name),
          subject === "grid_workers" ? h("td", {}, item.grid_code ?? "—") : null,
          h("td", { "data-col": "score" }, points(item.score)),
          figures.map((figureName) => h("td", { "data-col": figureName }, figure(figureName, item[figureName]))),
          h("td", { class: "actions" },
            h("button", { type: "button", "data-explain": key, disabled: item.score == null,
              onclick: () => { detail.hidden = !detail.hidden; } }, t("appraisal.breakdown")),
            h("button", { type: "button", "data-trend": key, onclick: () => showTrend(item) }, t("appraisal.trend")))),
        detail,
      ];
    })));
}

function breakdown(item) {
  return h("table", { class: "explain" },
    h("thead", {}, h("tr", {}, ["appraisal.term", "appraisal.count", "appraisal.rate", "appraisal.value", "appraisal.weight", "appraisal.points"]
      .map((key) => h("th", {}, t(key))))),
    h("tbody", {}, item.explain.map((term) => h("tr", { "data-term": term.term },
      h("td", {}, t(`field.${term.term}`)),
      h("td", {}, `${term.part} / ${term.whole}`),
      h("td", {}, term.rate == null ? t("appraisal.no_denominator") : percent(term.rate)),
      h("td", {}, percent(term.value)),
      h("td", {}, String(term.weight)),
      h("td", {}, points(term.points))))),
    h("tfoot", {}, h("tr", {}, h("td", { colspan: 5 }, t("appraisal.total")), h("td", {}, points(item.score)))));
}

// --- start ---------------------------------------------------------------------------------

async function route() {
  onChange = null;
  dispose();
  const hash = location.hash || "#/";
  if (!session.token || hash === "#/login") return loginPage();
  if (!me) return start();
  const ticket = hash.match(/^#\/tickets\/(\d+)$/);
  if (ticket) return ticketPage(Number(ticket[1]));
  if (hash === "#/dashboard") return dashboardPage();
  const appraisal = hash.match(/^#\/appraisal\/(grid_workers|departments)$/);
  if (appraisal) return appraisalPage(appraisal[1]);
  if (hash === "#/todo") return todoPage();
  if (hash !== "#/queue") { location.replace("#/queue"); return; }
  return queuePage();
}

async function start() {
  try {
    me = await api("users/me");
    me.unit = me.org_unit_code ? await api(`org-units/${encodeURIComponent(me.org_unit_code)}`).catch(() => null) : null;
    const [categories, departments] = await Promise.all([api("categories?limit=500"), api("departments?limit=500")]);
    names = {
      categories: Object.fromEntries(categories.items.map((item) => [item.code, item])),
      departments: Object.fromEntries(departments.items.map((item) => [item.code, item])),
    };
  } catch {
    return loginPage();
  }
  document.getElementById("bar").hidden = false;
  document.getElementById("who").textContent = `${me.display_name} (${t(`role.${me.role}`)})`;
  listen();
  const landing = me.role === "supervisor" ? "#/dashboard" : "#/queue";
  if (!location.hash || location.hash === "#/" || location.hash === "#/login") location.hash = landing;
  else route();
}

document.getElementById("logout").addEventListener("click", logOut);
document.getElementById("lang").addEventListener("click", () => {
  setLang(lang === "zh" ? "en" : "zh");
  document.getElementById("lang").textContent = lang === "zh" ? "English" : "中文";
  if (me) document.getElementById("who").textContent = `${me.display_name} (${t(`role.${me.role}`)})`;
  translateStatic();
  route();
});
document.getElementById("lang").textContent = lang === "zh" ? "English" : "中文";
setLang(lang);
translateStatic();
window.addEventListener("hashchange", route);
config = await fetch("/console/config.json").then((r) => r.json()).catch(() => config);
route();
