// The outbox. Everything the worker sends (reports, clock-ins, track batches, ticket actions and
// their photos) is written to IndexedDB the moment they tap send, with its client_id fixed then,
// and sent in order until the server has it: after a reload, an app restart or a phone killed
// mid-upload, the item is still there and is sent again. The server's idempotency makes a resend
// safe (the same client_id answers the same ticket; a track point at the same instant is
// ignored). Photos are uploaded first and their attachment ids kept in the item, so a resend
// does not upload them again.
//
// An item: {seq, user, kind, path, body, photos: [{blob, id}], label, created_at, attempts,
// next_at, state: "waiting" | "attention", error}. No answer, 408, 429 or a server error: tried
// again later, waiting longer each time. 401: the token is refreshed and the item sent again.
// Any other refusal (422, 409, 403, ...) the app cannot fix by itself: the item is kept as
// needing attention with the server's message, for the worker to edit, retry or discard.

import { api } from "./api.js";

const DB = "gridwork-field";
const BACKOFF_MS = [2_000, 5_000, 15_000, 30_000, 60_000, 120_000, 300_000];
export const events = new EventTarget(); // "change" (detail: {sent?: item, answer?})

let opened = null;

function db() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      request.result.createObjectStore("kv");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

// Runs `work(stores)` in one transaction over the named stores; resolves with what `work`
// returned once the transaction has committed.
async function transaction(names, mode, work) {
  const tx = (await db()).transaction(names, mode);
  const stores = Object.fromEntries(names.map((name) => [name, tx.objectStore(name)]));
  const result = work(stores);
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

function read(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export async function kvGet(key) {
  const tx = (await db()).transaction("kv");
  return read(tx.objectStore("kv").get(key));
}

export function kvSet(key, value) {
  return transaction(["kv"], "readwrite", ({ kv }) => kv.put(value, key));
}

export async function all() {
  const tx = (await db()).transaction("outbox");
  return read(tx.objectStore("outbox").getAll()); // in key order: the order of sending
}

function changed(detail = {}) {
  events.dispatchEvent(new CustomEvent("change", { detail }));
}

function fresh(item) {
  return { photos: [], attempts: 0, next_at: 0, state: "waiting", error: null, created_at: new Date().toISOString(), ...item };
}

// Saves a new item (removing the one it `replaces`, in the same transaction), then starts
// sending.
export async function add(item, { replaces } = {}) {
  await transaction(["outbox"], "readwrite", ({ outbox }) => {
    if (replaces != null) outbox.delete(replaces);
    outbox.add(fresh(item));
  });
  changed();
  flush();
}

// Appends `value` to the list kept under `key`, in one transaction; resolves with its length.
export function append(key, value) {
  return transaction(["kv"], "readwrite", ({ kv }) => {
    const out = { length: 0 };
    kv.get(key).onsuccess = (event) => {
      const list = [...(event.target.result || []), value];
      kv.put(list, key);
      out.length = list.length;
    };
    return out;
  }).then((out) => out.length);
}

// Moves the list kept under `key` into a new item made by `make(list)`, in one transaction.
export async function addFrom(key, make) {
  const out = await transaction(["outbox", "kv"], "readwrite", ({ outbox, kv }) => {
    const result = { added: false };
    kv.get(key).onsuccess = (event) => {
      const list = event.target.result || [];
      if (!list.length) return;
      outbox.add(fresh(make(list)));
      kv.put([], key);
      result.added = true;
    };
    return result;
  });
  if (out.added) {
    changed();
    flush();
  }
}

export async function discard(seq) {
  await transaction(["outbox"], "readwrite", ({ outbox }) => outbox.delete(seq));
  changed();
}

async function save(item) {
  await transaction(["outbox"], "readwrite", ({ outbox }) => outbox.put(item));
}

// Sends an item that needed attention again, as it is (the worker says the cause is gone).
export async function retry(seq) {
  await transaction(["outbox"], "readwrite", ({ outbox }) => {
    outbox.get(seq).onsuccess = (event) => {
      const item = event.target.result;
      if (item) outbox.put({ ...item, state: "waiting", next_at: 0, error: null });
    };
  });
  changed();
  flush();
}

// Retries what waits for the network, without touching what needs the worker's attention.
export async function nudge() {
  await transaction(["outbox"], "readwrite", ({ outbox }) => {
    outbox.openCursor().onsuccess = (event) => {
      const cursor = event.target.result;
      if (!cursor) return;
      if (cursor.value.state === "waiting") cursor.update({ ...cursor.value, next_at: 0 });
      cursor.continue();
    };
  });
  flush();
}

let who = null; // the signed-in worker: only their items are sent
let running = null;
let timer = null;

export function sendAs(username) {
  who = username;
  if (who) flush();
}

export function flush() {
  if (!who) return Promise.resolve();
  // One sender at a time, across the app's tabs too.
  running ??= (navigator.locks ? navigator.locks.request("gridwork-outbox", drain) : drain())
    .catch((error) => console.warn("outbox", error))
    .finally(() => { running = null; });
  return running;
}

function later(ms) {
  clearTimeout(timer);
  timer = setTimeout(flush, Math.max(ms, 200));
}

async function drain() {
  for (;;) {
    const item = (await all()).find((one) => one.state === "waiting" && one.user === who);
    if (!item) return;
    if (item.next_at > Date.now()) { later(item.next_at - Date.now()); return; }
    let answer;
    try {
      answer = await send(item);
    } catch (problem) {
      if (problem.status === 401) return; // signed out: sent once the worker signs in again
      item.attempts += 1;
      item.error = problem.message;
      if (problem.transient || problem.status === undefined) {
        const wait = BACKOFF_MS[Math.min(item.attempts, BACKOFF_MS.length) - 1];
        item.next_at = Date.now() + wait * (0.8 + Math.random() * 0.4);
        item.error = problem.status ? problem.message : "";
        await save(item);
        changed();
        later(item.next_at - Date.now());
        return; // in order: what follows waits for it
      }
      item.state = "attention";
      item.errors = problem.errors;
      await save(item);
      changed();
      continue;
    }
    await discard(item.seq);
    changed({ sent: item, answer });
  }
}

async function send(item) {
  for (const photo of item.photos) {
    if (photo.id) continue;
    const form = new FormData();
    form.append("file", photo.blob, "photo.jpg");
    photo.id = (await api("attachments", { method: "POST", form })).id;
    await save(item); // uploaded once: a resend names it by its id
  }
  const body = item.photos.length ? { ...item.body, attachment_ids: item.photos.map((p) => p.id) } : item.body;
  try {
    return await api(item.path, { method: "POST", json: body });
  } catch (problem) {
    // An action whose reply was lost: sent again, the ticket has moved on (409). Done when the
    // ticket's last change is this action by this worker.
    if (item.kind === "action" && problem.status === 409 && item.attempts > 0) {
      const history = await api(`tickets/${item.ticket_id}/history?limit=500`);
      const last = history.items.at(-1);
      if (last && last.actor === who && last.action === item.action) return null;
    }
    throw problem;
  }
}
