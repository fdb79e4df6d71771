// Patrol: the clock-in, then the track while on patrol. A point is kept every 30 s or every
// 25 m moved (whichever comes first) from watchPosition, in a buffer in IndexedDB; the buffer
// goes to the outbox as one batch for POST /api/v1/patrol/tracks every 20 points, every
// 5 minutes and when the patrol ends, so a track made offline is sent like everything else.
//
// Test hook: `?track_ms=N` on the page's URL (kept in localStorage "gridwork.field.track_ms")
// samples every N ms instead of 30 s and sends batches every 10 N.

import * as outbox from "./outbox.js";

const STATE = "gridwork.field.patrol"; // {since, clock_in?: the server's answer}
const hook = Number(new URLSearchParams(location.search).get("track_ms"));
if (hook > 0) localStorage.setItem("gridwork.field.track_ms", String(hook));
const EVERY_MS = Number(localStorage.getItem("gridwork.field.track_ms")) || 30_000;
const STEP_M = 25;
const BATCH_POINTS = 20;
const BATCH_MS = EVERY_MS * 10;

let watch = null;
let ticker = null;
let last = null; // the last point kept: {t, lat, lon}
let user = null;
let onPoint = () => {};

export function state() {
  return JSON.parse(localStorage.getItem(STATE) || "null");
}

function setState(value) {
  if (value) localStorage.setItem(STATE, JSON.stringify(value));
  else localStorage.removeItem(STATE);
}

// Metres between two points (equirectangular: exact enough at a few hundred metres).
export function distance(a, b) {
  const rad = Math.PI / 180;
  const x = (b.lon - a.lon) * rad * Math.cos(((a.lat + b.lat) / 2) * rad);
  const y = (b.lat - a.lat) * rad;
  return Math.hypot(x, y) * 6_371_000;
}

export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Clocks in at `fix` and starts the patrol; the answer (inside or outside the worker's grid)
// comes when the outbox has sent it.
export async function clockIn(username, fix, label) {
  const at = new Date().toISOString();
  const body = { client_id: newId(), lat: fix.lat, lon: fix.lon, at };
  setState({ since: at, client_id: body.client_id });
  await outbox.add({ user: username, kind: "clock_in", path: "clock-ins", body, label });
  resume(username);
}

export function answered(item, answer) {
  const current = state();
  if (current && item.kind === "clock_in" && item.body.client_id === current.client_id) {
    setState({ ...current, clock_in: answer });
  }
}

// Records the track while a patrol is on (also after a reload or an app restart).
export function resume(username, listener) {
  user = username;
  if (listener) onPoint = listener;
  if (!state() || watch !== null || !navigator.geolocation) return;
  const options = { enableHighAccuracy: true, maximumAge: 0, timeout: EVERY_MS * 2 };
  watch = navigator.geolocation.watchPosition(keep, () => {}, options);
  // A phone standing still may report no new fix: ask for one every interval.
  ticker = setInterval(() => {
    navigator.geolocation.getCurrentPosition(keep, () => {}, options);
    flushIfDue();
  }, EVERY_MS);
}

export async function stop() {
  if (watch !== null) navigator.geolocation.clearWatch(watch);
  clearInterval(ticker);
  watch = ticker = null;
  last = null;
  await sendBuffer();
  setState(null);
}

async function keep(position) {
  const point = {
    at: new Date(position.timestamp || Date.now()).toISOString(),
    lat: Number(position.coords.latitude.toFixed(6)),
    lon: Number(position.coords.longitude.toFixed(6)),
    accuracy_m: Math.round(position.coords.accuracy ?? 0),
  };
  const t = Date.parse(point.at);
  if (last && t - last.t < EVERY_MS && distance(last, point) < STEP_M) return;
  if (last && t <= last.t) return; // the same fix again
  last = { t, lat: point.lat, lon: point.lon };
  const count = await outbox.append("track", point);
  const current = state();
  if (current) setState({ ...current, points: (current.points || 0) + 1 });
  onPoint(point, count);
  if (count >= BATCH_POINTS) await sendBuffer();
}

async function flushIfDue() {
  const buffer = (await outbox.kvGet("track")) || [];
  if (buffer.length && Date.now() - Date.parse(buffer[0].at) >= BATCH_MS) await sendBuffer();
}

// The buffer becomes one outbox item, and is emptied in the same transaction.
function sendBuffer() {
  const who = user;
  return outbox.addFrom("track", (points) => ({
    user: who, kind: "track", path: "patrol/tracks", body: { points }, label: { points: points.length },
  }));
}

export async function buffered() {
  return ((await outbox.kvGet("track")) || []).length;
}
