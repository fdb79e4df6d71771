// The API as the signed-in grid worker. The tokens are kept on the phone (localStorage), so an
// app restart or a day offline does not sign the worker out; a 401 refreshes the access token
// (refresh tokens rotate: each is good for one use) and tries once more.

export const API = "/api/v1";
const KEY = "gridwork.field.";
const TIMEOUT_MS = 60_000; // a request hung on one bar of signal must not stall the outbox
const UPLOAD_TIMEOUT_MS = 180_000;

export const session = {
  get token() { return localStorage.getItem(`${KEY}token`); },
  get refresh() { return localStorage.getItem(`${KEY}refresh`); },
  save(issued) {
    localStorage.setItem(`${KEY}token`, issued.access_token);
    if (issued.refresh_token) localStorage.setItem(`${KEY}refresh`, issued.refresh_token);
  },
  clear() {
    localStorage.removeItem(`${KEY}token`);
    localStorage.removeItem(`${KEY}refresh`);
  },
};

// What a call returned when it failed: status 0 for no answer at all (offline, timed out).
export class Problem extends Error {
  constructor(status, body, fallback = "") {
    super(body?.detail || body?.title || fallback || `HTTP ${status}`);
    this.status = status;
    this.errors = body?.errors || [];
  }

  // Worth trying again later as it is: no answer, a timeout, too many requests, a server error.
  get transient() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

let refreshing = null;
let onSignedOut = () => {};

// Called when the refresh token no longer works: the worker must sign in again (nothing queued
// or typed is lost meanwhile).
export function whenSignedOut(callback) { onSignedOut = callback; }

function timeout(ms) {
  return typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(ms) : undefined;
}

export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password });
  let response;
  try {
    response = await fetch(`${API}/auth/token`, { method: "POST", body, signal: timeout(TIMEOUT_MS) });
  } catch {
    throw new Problem(0);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Problem(response.status, data);
  session.save(data);
}

// One refresh at a time, shared by every call that met a 401. True when there is a new token.
export function refreshToken() {
  refreshing ??= (async () => {
    const used = session.refresh;
    if (!used) return false;
    const body = new URLSearchParams({ grant_type: "refresh_token", refresh_token: used });
    let response;
    try {
      response = await fetch(`${API}/auth/token`, { method: "POST", body, signal: timeout(TIMEOUT_MS) });
    } catch {
      throw new Problem(0); // no answer: not signed out, try again later
    }
    if (response.ok) {
      session.save(await response.json());
      return true;
    }
    if (session.refresh !== used) return true; // another tab of the app refreshed meanwhile
    if (response.status >= 500 || response.status === 429) throw new Problem(response.status);
    return false;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

// A call of the API: the parsed body, or a Problem. `json` is sent as JSON, `form` (FormData)
// as multipart.
export async function api(path, { method = "GET", json, form, retried = false } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(`${API}/${path}`, {
      method, headers, body, signal: timeout(form ? UPLOAD_TIMEOUT_MS : TIMEOUT_MS),
    });
  } catch {
    throw new Problem(0);
  }
  if (response.status === 401) {
    if (!retried && (await refreshToken())) return api(path, { method, json, form, retried: true });
    onSignedOut();
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}
