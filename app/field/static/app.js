// The grid worker's phone app: sign in once, report with GPS, map and photos, clock in and
// patrol, my reports, to do (check 核实, verify 核查, rate), and the outbox of what is not sent
// yet. Everything is saved on the phone first (outbox.js) and sent when the network allows; the
// catalogue, the worker's grid and the last lists are kept in localStorage for offline use.

import { API, api, session, signIn, whenSignedOut } from "./api.js";
import { lang, setLang, t, translateStatic } from "./i18n.js";
import * as outbox from "./outbox.js";
import * as patrol from "./patrol.js";

const KEY = "gridwork.field.";
const MAX_PHOTOS = 3;
const MAX_SIDE = 1600; // photos are shrunk on the phone to at most this many pixels a side
const NEARBY_RADIUS_M = 100;
const FIELD_ACTIONS = ["confirm", "refute", "verify", "rate", "reopen"];
const NOTE_REQUIRED = ["refute", "reopen"];
const WITH_PHOTOS = ["confirm", "verify"];

const view = document.getElementById("view");
const cache = {
  get(name) {
    try { return JSON.parse(localStorage.getItem(KEY + name)); } catch { return null; }
  },
  set(name, value) { localStorage.setItem(KEY + name, JSON.stringify(value)); },
  drop(name) { localStorage.removeItem(KEY + name); },
};
let me = cache.get("me");
let config = cache.get("config") || { map_tiles_url: "", map_attribution: "", timezone: "Asia/Shanghai" };
let leave = []; // what the screen shown must release before the next is drawn (GPS, map, URLs)
let shown = ""; // the screen shown

// --- helpers ------------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false && value != null) element.setAttribute(name, value);
  }
  element.append(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return element;
}

// Puts `nodes` (nulls left out) in `element`; `show` as the screen.
function fill(element, ...nodes) {
  element.replaceChildren(...nodes.flat().filter((node) => node != null && node !== false));
}
const show = (...nodes) => fill(view, ...nodes);

function when(value) {
  if (!value) return "";
  return new Date(value).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: config.timezone, month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

function timeOf(value) {
  return new Date(value).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: config.timezone });
}

function message(problem) {
  if (!problem.status) return t("error.network");
  const fields = (problem.errors || []).map((e) => e.msg).filter((m) => m && m !== problem.message);
  return [problem.message, ...fields].join("; ");
}

function categoryName(code) {
  return (cache.get("categories") || []).find((c) => c.code === code)?.name ?? code;
}

function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  leave.push(() => URL.revokeObjectURL(url));
  return url;
}

// A JPEG of at most MAX_SIDE pixels a side, upright (the camera's EXIF orientation applied).
// A photo the browser cannot decode (HEIC on some phones) goes as it is: the server reads it.
async function shrink(file) {
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.82));
  } catch {
    return file;
  }
}

// A photo picker (camera or gallery) of up to MAX_PHOTOS photos kept in `photos`
// ([{blob, id?}]); `changed` is called after every change.
function photoPicker(photos, changed = () => {}) {
  const strip = h("div", { class: "thumbs" });
  const count = h("span", { class: "count" });
  const input = h("input", { type: "file", name: "photos", accept: "image/*", multiple: true, class: "sr-only" });
  const draw = () => {
    count.textContent = `${photos.length}/${MAX_PHOTOS}`;
    strip.replaceChildren(...photos.map((photo, i) => h("figure", {},
      h("img", { src: objectUrl(photo.blob), alt: "" }),
      h("button", { type: "button", class: "remove", "aria-label": t("photo.remove"), onclick: () => {
        photos.splice(i, 1);
        draw();
        changed();
      } }, "×"))));
  };
  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = "";
    if (photos.length + files.length > MAX_PHOTOS) toast(t("photo.max", { n: MAX_PHOTOS }));
    for (const file of files.slice(0, MAX_PHOTOS - photos.length)) photos.push({ blob: await shrink(file), id: null });
    draw();
    changed();
  });
  draw();
  return h("div", { class: "photos" },
    h("label", { class: "button secondary" }, input, t("photo.add"), " ", count), strip);
}

// Shows `text` under the field named `name` (a form control's name, or a data-field).
function fieldError(form, name, text) {
  const field = form.querySelector(`[data-field=${name}]`) || form.querySelector(`[name=${name}]`)?.closest("label, fieldset") || form;
  field.append(h("span", { class: "field-error", role: "alert" }, text));
}

function loadLeaflet() {
  loadLeaflet.done ??= new Promise((resolve, reject) => {
    document.head.append(h("link", { rel: "stylesheet", href: "/field/static/vendor/leaflet/leaflet.css" }));
    document.head.append(h("script", { src: "/field/static/vendor/leaflet/leaflet.js", onload: resolve, onerror: reject }));
  });
  return loadLeaflet.done;
}

// --- start, sign-in and navigation ---------------------------------------------------------

const SCREENS = {
  report: reportScreen, patrol: patrolScreen, todo: todoScreen, mine: mineScreen,
  queue: queueScreen, tickets: ticketScreen,
};

function route() {
  for (const release of leave.splice(0)) release();
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const signedIn = session.token && me;
  document.getElementById("tabs").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? me.display_name : "";
  if (!signedIn) return signinScreen();
  shown = SCREENS[name] ? name : "report";
  for (const tab of document.querySelectorAll("#tabs a")) {
    tab.toggleAttribute("aria-current", tab.getAttribute("href") === `#/${shown}`);
  }
  view.replaceChildren();
  window.scrollTo(0, 0);
  SCREENS[shown](arg);
}

function signinScreen(note = "") {
  shown = "signin";
  const error = h("p", { class: "error", role: "alert" }, note);
  const button = h("button", { type: "submit", class: "primary" }, t("signin.submit"));
  const form = h("form", { name: "signin", class: "card", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await signIn(form.username.value.trim(), form.password.value);
      const [who, categories] = await Promise.all([api("users/me"), api("categories?limit=500")]);
      if (who.role !== "grid_worker") {
        session.clear();
        error.textContent = t("signin.not_worker");
        return;
      }
      if (me && me.username !== who.username) for (const name of ["mine", "todo", "tickets", "draft"]) cache.drop(name);
      me = who;
      cache.set("me", who);
      cache.set("categories", categories.items);
      loadReference(["me", "categories"]); // the grid and the settings, meanwhile
      started();
      if (!location.hash.startsWith("#/") || location.hash === "#/") history.replaceState(null, "", "#/report");
      route();
    } catch (problem) {
      const known = { 401: "signin.wrong", 429: "signin.locked" }[problem.status];
      error.textContent = known ? t(known) : message(problem);
    } finally {
      button.disabled = false;
    }
  } },
    h("h1", {}, t("signin.title")),
    h("label", {}, t("signin.username"),
      h("input", { name: "username", autocomplete: "username", autocapitalize: "none", required: true, value: me?.username ?? "" })),
    h("label", {}, t("signin.password"),
      h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    button,
    error);
  view.replaceChildren(form);
}

// The catalogue, the worker's grid, the app's settings and the worker's own record, kept for
// offline use; those in `known` were just read.
async function loadReference(known = []) {
  const load = {
    categories: () => api("categories?limit=500").then((page) => page.items),
    grid: () => api(`org-units/${encodeURIComponent(me.org_unit_code)}`),
    config: () => fetch("/field/config.json").then((r) => (r.ok ? r.json() : Promise.reject(r))),
    me: () => api("users/me"),
  };
  const wanted = Object.entries(load).filter(([name]) => !known.includes(name));
  await Promise.allSettled(wanted.map(async ([name, read]) => cache.set(name, await read())));
  me = cache.get("me");
  config = cache.get("config") || config;
}

function started() {
  outbox.sendAs(me.username);
  patrol.resume(me.username, () => { if (shown === "patrol") route(); });
  badge();
}

// The refresh token no longer works (expired after weeks unused, or revoked): sign in again.
// The outbox waits meanwhile, and drafts are kept.
whenSignedOut(() => {
  session.clear();
  outbox.sendAs(null);
  if (shown === "signin") return;
  route();
  view.querySelector("[role=alert]").textContent = t("signin.expired");
});

async function badge() {
  if (!me) return;
  const mine = (await outbox.all()).filter((item) => item.user === me.username);
  const count = document.querySelector('#tabs a[href="#/queue"] .badge');
  count.textContent = mine.length ? String(mine.length) : "";
  count.classList.toggle("attention", mine.some((item) => item.state === "attention"));
}

function network() {
  const online = navigator.onLine;
  const dot = document.getElementById("net");
  dot.dataset.t = online ? "net.online" : "net.offline";
  dot.classList.toggle("off", !online);
  translateStatic(document.getElementById("bar"));
  if (online) outbox.nudge();
}

outbox.events.addEventListener("change", ({ detail }) => {
  badge();
  const { sent, answer } = detail;
  if (sent?.kind === "report" && answer) toast(t("report.sent", { number: answer.number }));
  if (sent?.kind === "clock_in" && answer) {
    patrol.answered(sent, answer);
    toast(answer.inside_grid ? t("patrol.inside", { grid: answer.grid_code }) : t("patrol.outside"));
  }
  if (shown === "queue" || shown === "patrol" || (shown === "tickets" && sent?.kind === "action")) route();
});

window.addEventListener("hashchange", route);
window.addEventListener("online", network);
window.addEventListener("offline", network);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && navigator.onLine) outbox.nudge();
});
document.getElementById("lang").addEventListener("click", () => {
  setLang(lang === "zh" ? "en" : "zh");
  translateStatic();
  route();
});

// The service worker keeps the app shell; registered once the page has loaded, so that its
// downloads do not compete with the page's own on a slow connection.
if ("serviceWorker" in navigator) {
  const register = () => navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).catch(() => {});
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register);
}
setLang(lang);
translateStatic();
network();
if (session.token && me) {
  started();
  if (navigator.onLine) loadReference().catch(() => {});
}
route();

// --- report --------------------------------------------------------------------------------

function reportScreen() {
  const draft = cache.get("draft") || {};
  const categories = cache.get("categories") || [];
  const photos = [];
  let gps = null; // the phone's latest fix: {lat, lon, accuracy}
  let pinned = draft.pinned || null; // a point set on the map (or kept from an edited report)
  let map = null;
  let marker = null;
  let circle = null;
  const place = () => pinned || (gps && { ...gps, source: "gps" });

  const where = h("p", { class: "where", "data-accuracy": "" }, t("gps.waiting"));
  const mapBox = h("div", { class: "map", id: "map" });
  const nearby = h("section", { class: "nearby", hidden: true });
  const status = h("p", { class: "status", role: "status" });
  const select = h("select", { name: "category_code", required: true },
    h("option", { value: "" }, t("report.pick_category")),
    categories.map((c) => h("option", { value: c.code, selected: c.code === draft.category_code }, c.name)));
  const form = h("form", { name: "report", class: "card", novalidate: true },
    h("label", {}, t("report.category"), select),
    h("label", {}, t("report.description"),
      h("textarea", { name: "description", rows: 4, maxlength: 4000, required: true, placeholder: t("report.description_hint") }, draft.description || "")),
    h("fieldset", { class: "position", "data-field": "position" }, h("legend", {}, t("report.position")), where, mapBox,
      h("button", { type: "button", class: "secondary", "data-gps": "", onclick: () => { pinned = null; update(); } }, t("report.use_gps"))),
    photoPicker(photos, savePhotos),
    h("label", { class: "switch" }, h("input", { type: "checkbox", name: "urgent", role: "switch", checked: Boolean(draft.urgent) }), h("span", {}, t("report.urgent"))),
    h("label", { class: "switch" }, h("input", { type: "checkbox", name: "resolved_on_site", role: "switch", checked: Boolean(draft.resolved_on_site) }), h("span", {}, t("report.resolved_on_site"))),
    nearby,
    h("button", { type: "submit", class: "primary" }, draft.replaces ? t("report.resend") : t("report.submit")),
    status);
  if (!categories.length) status.textContent = t("report.no_categories");
  view.replaceChildren(h("h1", {}, t("report.title")), form);

  outbox.kvGet("draft_photos").then((saved) => {
    if (!saved?.length || photos.length) return;
    photos.push(...saved);
    form.querySelector(".photos").replaceWith(photoPicker(photos, savePhotos));
  });

  function saveDraft() {
    const data = new FormData(form);
    cache.set("draft", {
      ...draft, pinned,
      category_code: data.get("category_code"), description: data.get("description"),
      urgent: data.has("urgent"), resolved_on_site: data.has("resolved_on_site"),
    });
  }
  function savePhotos() { outbox.kvSet("draft_photos", photos.map(({ blob, id }) => ({ blob, id }))); }
  form.addEventListener("input", saveDraft);
  form.addEventListener("change", saveDraft);

  // The position: GPS while the worker has not set the point on the map.
  function update() {
    const at = place();
    if (!at) where.textContent = gps === false ? t("gps.failed") : t("gps.waiting");
    else if (at.source === "map") where.textContent = t("gps.map");
    else where.textContent = t("gps.accuracy", { m: Math.round(at.accuracy ?? 0) });
    where.classList.toggle("poor", Boolean(at && at.source === "gps" && at.accuracy > 50));
    if (map && at) {
      marker.setLatLng([at.lat, at.lon]).addTo(map);
      if (gps) circle.setLatLng([gps.lat, gps.lon]).setRadius(gps.accuracy || 0).addTo(map);
      if (!map.getBounds().contains(marker.getLatLng())) map.setView(marker.getLatLng(), map.getZoom(), { animate: false });
    }
    saveDraft();
    lookNearby();
  }
  if (navigator.geolocation) {
    const watch = navigator.geolocation.watchPosition((position) => {
      const first = !gps;
      gps = { lat: position.coords.latitude, lon: position.coords.longitude, accuracy: position.coords.accuracy };
      update();
      if (first && map && !pinned) map.setView([gps.lat, gps.lon], 17, { animate: false });
    }, () => { if (!gps) { gps = false; update(); } }, { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 });
    leave.push(() => navigator.geolocation.clearWatch(watch));
  }

  loadLeaflet().then(() => {
    if (!mapBox.isConnected) return;
    // No animations: lighter on a slow phone, and nothing left running when the screen goes.
    map = L.map(mapBox, {
      attributionControl: Boolean(config.map_attribution), zoomAnimation: false, fadeAnimation: false, markerZoomAnimation: false,
    });
    leave.push(() => map.remove());
    if (config.map_tiles_url) {
      L.tileLayer(config.map_tiles_url, { attribution: config.map_attribution, maxZoom: 19 }).addTo(map);
    }
    const grid = cache.get("grid"); // read now: after a first sign-in it comes meanwhile
    const shape = grid?.boundary && L.geoJSON(grid.boundary, { style: { color: "#1d5fbf", weight: 2, fillOpacity: 0.06 } }).addTo(map);
    marker = L.marker([0, 0], { draggable: true, autoPan: true, keyboard: false });
    circle = L.circle([0, 0], { radius: 0, weight: 1, color: "#1d5fbf", fillOpacity: 0.1, interactive: false });
    const setPin = (latlng) => {
      pinned = { lat: Number(latlng.lat.toFixed(6)), lon: Number(latlng.lng.toFixed(6)), source: "map" };
      update();
    };
    marker.on("dragend", () => setPin(marker.getLatLng()));
    map.on("click", (event) => setPin(event.latlng));
    const at = place();
    if (at) map.setView([at.lat, at.lon], 17, { animate: false });
    else if (shape) map.fitBounds(shape.getBounds(), { animate: false });
    else map.setView([35, 105], 4, { animate: false }); // no grid, no fix yet: the country
    update();
  }).catch(() => { mapBox.hidden = true; });

  // Open tickets near the point, before the worker sends: one may be the same thing.
  let asked = null;
  let pending = null;
  function lookNearby() {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const at = place();
      if (!at || (asked && patrol.distance(asked, at) < 15)) return;
      if (!navigator.onLine) {
        nearby.hidden = false;
        nearby.replaceChildren(h("h2", {}, t("nearby.offline")));
        return;
      }
      asked = at;
      try {
        const found = await api(`nearby-tickets?lat=${at.lat}&lon=${at.lon}&radius_m=${NEARBY_RADIUS_M}`);
        drawNearby(found.items);
      } catch {
        asked = null;
      }
    }, 500);
  }
  leave.push(() => clearTimeout(pending));
  function drawNearby(items) {
    nearby.hidden = !items.length;
    nearby.replaceChildren(h("h2", {}, t("nearby.title", { n: items.length })),
      h("p", { class: "muted" }, t("nearby.hint")),
      h("ul", {}, items.map((item) => h("li", { "data-ticket": item.id },
        h("div", { class: "row" }, h("strong", {}, item.number), h("span", { class: `badge s-${item.status}` }, t(`status.${item.status}`)),
          h("span", { class: "muted" }, t("nearby.distance", { m: Math.round(item.distance_m) }))),
        h("div", {}, categoryName(item.category_code), " · ", when(item.reported_at)),
        h("p", { class: "text" }, item.description),
        h("button", { type: "button", class: "secondary", "data-same": "", onclick: async () => {
          if (!confirm(t("nearby.same_confirm", { number: item.number }))) return;
          await clearDraft();
          toast(t("nearby.same_done", { number: item.number }));
          route();
        } }, t("nearby.same"))))));
  }

  async function clearDraft() {
    cache.drop("draft");
    await outbox.kvSet("draft_photos", []);
  }

  const again = () => { asked = null; lookNearby(); };
  window.addEventListener("online", again);
  leave.push(() => window.removeEventListener("online", again));

  let sending = false; // a second tap must not file the report twice
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    const data = new FormData(form);
    const description = String(data.get("description") || "").trim();
    const at = place();
    if (!data.get("category_code")) fieldError(form, "category_code", t("report.need_category"));
    if (!description) fieldError(form, "description", t("report.need_description"));
    if (!at) fieldError(form, "position", t("report.need_position"));
    if (form.querySelector(".field-error")) return;
    const body = {
      client_id: draft.client_id || patrol.newId(),
      category_code: data.get("category_code"),
      description,
      lat: Number(at.lat.toFixed(6)),
      lon: Number(at.lon.toFixed(6)),
      occurred_at: draft.occurred_at || new Date().toISOString(),
      urgent: data.has("urgent"),
      resolved_on_site: data.has("resolved_on_site"),
      location_source: at.source,
    };
    if (at.source === "gps" && at.accuracy != null) body.accuracy_m = Math.round(at.accuracy);
    sending = true;
    await outbox.add({
      user: me.username, kind: "report", path: "events", body,
      photos: photos.map(({ blob, id }) => ({ blob, id: id ?? null })),
      label: { category: categoryName(body.category_code), text: description.slice(0, 40) },
    }, { replaces: draft.replaces });
    await clearDraft();
    route();
    view.querySelector("form[name=report] [role=status]").textContent = navigator.onLine ? t("report.saved") : t("report.saved_offline");
  });
}

// --- the outbox ----------------------------------------------------------------------------

function describe(item) {
  if (item.kind === "report") return `${t("queue.report")} · ${item.label.category} · ${item.label.text}`;
  if (item.kind === "clock_in") return t("queue.clock_in");
  if (item.kind === "track") return t("queue.track", { n: item.label.points });
  return `${t(`action.${item.action}`)} · ${item.label.number}`;
}

async function queueScreen() {
  const items = (await outbox.all()).filter((item) => item.user === me.username);
  const points = await patrol.buffered();
  if (shown !== "queue") return;
  const attention = items.filter((item) => item.state === "attention").length;
  show(
    h("h1", {}, t("queue.title")),
    h("p", { class: "muted", "data-summary": "" }, items.length
      ? t("queue.summary", { n: items.length, a: attention }) : t("queue.empty")),
    items.length ? h("button", { type: "button", class: "primary", "data-send-now": "", onclick: () => outbox.nudge() }, t("queue.send_now")) : null,
    h("ul", { class: "queue" }, items.map((item) => h("li", {
      "data-seq": item.seq, "data-kind": item.kind, "data-state": item.state, class: `card ${item.state}`,
    },
      h("strong", {}, describe(item)),
      h("div", { class: "muted" }, t("queue.saved_at", { at: when(item.created_at) }),
        item.photos.length ? ` · ${t("queue.photos", { n: item.photos.length, up: item.photos.filter((p) => p.id).length })}` : ""),
      item.state === "attention"
        ? [h("p", { class: "error", "data-error": "" }, t("queue.refused"), " ", item.error),
          h("div", { class: "row" },
            item.kind === "report" ? h("button", { type: "button", "data-edit": "", onclick: () => edit(item) }, t("queue.edit")) : null,
            h("button", { type: "button", class: "secondary", "data-retry": "", onclick: () => outbox.retry(item.seq) }, t("queue.retry")),
            h("button", { type: "button", class: "danger", "data-discard": "", onclick: () => {
              if (confirm(t("queue.discard_confirm"))) outbox.discard(item.seq);
            } }, t("queue.discard")))]
        : h("p", { class: "muted", "data-wait": "" }, item.attempts
          ? t("queue.retrying", { n: item.attempts, at: timeOf(item.next_at), why: item.error || t("error.network") })
          : t("queue.waiting"))))),
    points ? h("p", { class: "muted" }, t("queue.track_buffer", { n: points })) : null);
}

async function edit(item) {
  const { body } = item;
  cache.set("draft", {
    replaces: item.seq, client_id: body.client_id, occurred_at: body.occurred_at,
    category_code: body.category_code, description: body.description,
    urgent: body.urgent, resolved_on_site: body.resolved_on_site,
    pinned: { lat: body.lat, lon: body.lon, source: body.location_source || "map", accuracy: body.accuracy_m },
  });
  await outbox.kvSet("draft_photos", item.photos);
  location.hash = "#/report";
}

// --- patrol --------------------------------------------------------------------------------

async function patrolScreen() {
  const on = patrol.state();
  const points = await patrol.buffered();
  if (shown !== "patrol") return;
  const status = h("p", { class: "status", role: "status" });
  let answer = null;
  if (on?.clock_in) {
    const inside = on.clock_in.inside_grid;
    answer = h("p", { class: inside ? "ok" : "warn", "data-inside": String(inside) },
      inside ? t("patrol.inside", { grid: on.clock_in.grid_code }) : t("patrol.outside_detail", { grid: on.clock_in.grid_code || "—", mine: me.org_unit_code }));
  } else if (on) {
    answer = h("p", { class: "muted", "data-inside": "" }, t("patrol.pending"));
  }
  const clockIn = h("button", { type: "button", class: "primary big", "data-clock-in": "", onclick: () => {
    clockIn.disabled = true;
    status.textContent = t("gps.waiting");
    navigator.geolocation.getCurrentPosition(async (position) => {
      const fix = { lat: Number(position.coords.latitude.toFixed(6)), lon: Number(position.coords.longitude.toFixed(6)) };
      await patrol.clockIn(me.username, fix, {});
      route();
    }, () => {
      clockIn.disabled = false;
      status.textContent = t("gps.failed");
    }, { enableHighAccuracy: true, maximumAge: 0, timeout: 30_000 });
  } }, t("patrol.clock_in"));
  const stop = h("button", { type: "button", class: "danger big", "data-stop": "", onclick: async () => {
    stop.disabled = true;
    await patrol.stop();
    route();
  } }, t("patrol.stop"));
  show(h("h1", {}, t("patrol.title")),
    h("section", { class: "card patrol" },
      h("p", {}, t("patrol.grid", { grid: cache.get("grid")?.name || me.org_unit_code })),
      on ? h("p", { "data-on": "" }, t("patrol.since", { at: when(on.since) })) : h("p", { class: "muted" }, t("patrol.off")),
      answer,
      on ? h("p", { class: "muted", "data-points": String(on.points || 0) }, t("patrol.points", { n: on.points || 0, waiting: points })) : null,
      on ? stop : clockIn,
      status));
}

// --- lists: to do and my reports -----------------------------------------------------------

function remember(tickets) {
  const known = cache.get("tickets") || {};
  for (const ticket of tickets) known[ticket.id] = ticket;
  const ids = Object.keys(known);
  for (const id of ids.slice(0, Math.max(0, ids.length - 300))) delete known[id];
  cache.set("tickets", known);
}

// A list read from the API, or its last copy when offline.
async function listScreen(name, title, path, pick, note) {
  const heading = h("h1", {}, t(title));
  const info = h("p", { class: "muted" });
  const list = h("ul", { class: `tickets ${name}` });
  view.replaceChildren(heading, info, list);
  const draw = (items) => {
    list.replaceChildren(...items.map((ticket) => h("li", { class: "card" },
      h("a", { href: `#/tickets/${ticket.id}`, "data-ticket": ticket.id },
        h("div", { class: "row" }, h("strong", {}, ticket.number), h("span", { class: `badge s-${ticket.status}` }, t(`status.${ticket.status}`)),
          ticket.urgent ? h("span", { class: "badge urgent" }, t("report.urgent")) : null),
        note(ticket) ? h("div", { class: "todo-what" }, note(ticket)) : null,
        h("div", { class: "muted" }, categoryName(ticket.category_code), " · ", when(ticket.reported_at)),
        h("p", { class: "text" }, ticket.description)))));
    if (!items.length) list.append(h("li", { class: "empty" }, t("list.empty")));
  };
  const saved = cache.get(name);
  if (saved) draw(saved.items);
  try {
    const items = pick((await api(path)).items);
    cache.set(name, { items, at: new Date().toISOString() });
    remember(items);
    if (shown === name) draw(items);
  } catch (problem) {
    info.textContent = saved ? t("list.offline", { at: when(saved.at) }) : message(problem);
  }
}

function todoScreen() {
  const what = { checking: "todo.check", feedback: "todo.verify", closed: "todo.rate" };
  listScreen("todo", "todo.title", "tickets?awaiting=me&limit=100", (items) => items,
    (ticket) => (what[ticket.status] ? t(what[ticket.status]) : ""));
}

function mineScreen() {
  listScreen("mine", "mine.title", "tickets?limit=200",
    (items) => items.filter((ticket) => ticket.reporter === me.username), // newest first
    () => "");
  view.append(h("section", { class: "card account" },
    h("p", {}, me.display_name, " · ", me.username, " · ", cache.get("grid")?.name || me.org_unit_code),
    h("button", { type: "button", class: "secondary", "data-signout": "", onclick: signOut }, t("signin.signout"))));
}

async function signOut() {
  const waiting = (await outbox.all()).filter((item) => item.user === me.username).length;
  if (!confirm(waiting ? t("signin.signout_waiting", { n: waiting }) : t("signin.signout_confirm"))) return;
  await patrol.stop();
  // Ends this phone's sign-in on the server too; signing out here never waits on the network.
  if (session.refresh && navigator.onLine) {
    fetch(`${API}/auth/logout`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    }).catch(() => null);
  }
  session.clear();
  outbox.sendAs(null);
  for (const name of ["mine", "todo", "tickets"]) cache.drop(name);
  route();
}

// --- a ticket, its history and the worker's actions -----------------------------------------

async function ticketScreen(id) {
  let ticket = (cache.get("tickets") || {})[id];
  const body = h("div", {});
  const info = h("p", { class: "muted" });
  const back = () => (history.length > 1 ? history.back() : (location.hash = "#/todo"));
  view.replaceChildren(h("button", { type: "button", class: "link", onclick: back }, t("ticket.back")), info, body);
  if (ticket) await drawTicket(body, ticket, null);
  try {
    ticket = await api(`tickets/${id}`);
    remember([ticket]);
    const changes = await api(`tickets/${id}/history?limit=500`).catch(() => null);
    if (shown === "tickets") await drawTicket(body, ticket, changes?.items);
  } catch (problem) {
    info.textContent = ticket ? t("list.offline_ticket") : problem.status === 404 ? t("ticket.not_visible") : message(problem);
  }
}

let viewing = null; // the ticket shown, as last read

// Draws the ticket; an action form the worker has opened meanwhile stays as it is.
async function drawTicket(box, ticket, history) {
  viewing = ticket;
  const queued = (await outbox.all()).filter((item) => item.kind === "action" && item.ticket_id === ticket.id);
  const actions = ticket.allowed_actions.filter((action) => FIELD_ACTIONS.includes(action));
  const opened = box.querySelector("section.actions form")?.parentElement;
  const actionBox = opened || h("section", { class: "actions" },
    queued.length
      ? queued.map((item) => h("p", { class: "ok", "data-queued": item.action }, t("ticket.queued", { action: t(`action.${item.action}`) })))
      : actions.map((action) => h("button", {
        type: "button", class: action === "refute" || action === "reopen" ? "secondary" : "primary", "data-action": action,
        // Into the box on screen, for the ticket as last read: a tap may land on a button of
        // the draw that the ticket, fresh from the server, has just replaced.
        onclick: () => (box.querySelector("section.actions") || actionBox).replaceChildren(
          actionForm(viewing?.id === ticket.id ? viewing : ticket, action)),
      }, t(`action.${action}`))));
  const photos = h("div", { class: "thumbs" });
  fill(box,
    h("h1", {}, ticket.number, " ", h("span", { class: `badge s-${ticket.status}`, "data-status": ticket.status }, t(`status.${ticket.status}`))),
    h("dl", { class: "card" },
      h("dt", {}, t("report.category")), h("dd", {}, categoryName(ticket.category_code)),
      h("dt", {}, t("report.description")), h("dd", {}, ticket.description),
      h("dt", {}, t("ticket.reported_at")), h("dd", {}, when(ticket.reported_at)),
      h("dt", {}, t("ticket.grid")), h("dd", {}, ticket.grid_code)),
    photos,
    actionBox,
    history ? h("ol", { class: "timeline" }, history.map((entry) => h("li", {},
      h("strong", {}, t(`action.${entry.action}`)), " ",
      h("span", { class: "muted" }, when(entry.at), " · ", entry.actor),
      entry.from_status && entry.from_status !== entry.to_status ? h("div", {}, t(`status.${entry.from_status}`), " → ", t(`status.${entry.to_status}`)) : null,
      entry.note ? h("div", { class: "text" }, entry.note) : null))) : null);
  if (history && navigator.onLine) {
    api(`tickets/${ticket.id}/attachments`).then(async (list) => {
      for (const photo of list.slice(0, 9)) {
        const response = await fetch(`/api/v1/attachments/${photo.id}/thumbnail`, { headers: { Authorization: `Bearer ${session.token}` } });
        if (response.ok && photos.isConnected) photos.append(h("img", { src: objectUrl(await response.blob()), alt: "" }));
      }
    }).catch(() => {});
  }
}

function actionForm(ticket, action) {
  const photos = [];
  const form = h("form", { name: "action", class: "card", "data-action": action, novalidate: true },
    h("h2", {}, t(`action.${action}`)),
    action === "verify" ? h("fieldset", { class: "choice" }, h("legend", {}, t("verify.result")),
      h("label", {}, h("input", { type: "radio", name: "passed", value: "true", checked: true }), t("verify.passed")),
      h("label", {}, h("input", { type: "radio", name: "passed", value: "false" }), t("verify.failed"))) : null,
    action === "rate" ? h("fieldset", { class: "choice score", "data-field": "score" }, h("legend", {}, t("rate.score")),
      [5, 4, 3, 2, 1].map((n) => h("label", {}, h("input", { type: "radio", name: "score", value: n, required: true }), String(n)))) : null,
    h("label", {}, t(action === "rate" ? "rate.comment" : "action.note"),
      h("textarea", { name: action === "rate" ? "comment" : "note", rows: 3, maxlength: 2000, required: NOTE_REQUIRED.includes(action) })),
    WITH_PHOTOS.includes(action) ? photoPicker(photos) : null,
    h("button", { type: "submit", class: "primary" }, t("action.send")));
  let sending = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    const data = new FormData(form);
    const text = String(data.get(action === "rate" ? "comment" : "note") || "").trim();
    const body = { expected_version: (viewing?.id === ticket.id ? viewing : ticket).version };
    if (action === "rate") {
      if (!data.get("score")) return fieldError(form, "score", t("rate.need_score"));
      body.score = Number(data.get("score"));
      if (text) body.comment = text;
    } else if (text) {
      body.note = text;
    } else if (NOTE_REQUIRED.includes(action)) {
      return fieldError(form, "note", t("action.need_note"));
    }
    if (action === "verify") body.passed = data.get("passed") === "true";
    sending = true;
    await outbox.add({
      user: me.username, kind: "action", action, ticket_id: ticket.id,
      path: `tickets/${ticket.id}/actions/${action}`, body,
      photos: photos.map(({ blob }) => ({ blob, id: null })),
      label: { number: ticket.number },
    });
    route();
  });
  return form;
}
