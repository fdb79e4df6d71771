// The field app's service worker: it keeps the app shell (the page, its scripts and styles,
// icons and the vendored Leaflet) so that /field/ opens with no network after the first visit.
// It never answers for the API: the app keeps its own copies of what it needs offline (the
// categories, its grid, the last lists) and its outbox in IndexedDB, and knows them for what
// they are. The server fills in VERSION and SHELL from the files (app/field/router.py).

const VERSION = "__VERSION__";
const SHELL = __SHELL__;
const CACHE = `gridwork-field-${VERSION}`;
const PAGE = "/field/";

self.addEventListener("install", (event) => {
  // "no-cache": revalidated with the server (a 304 costs no body), never an older copy.
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "no-cache" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("gridwork-field-") && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  const key = request.mode === "navigate" && url.pathname === PAGE ? PAGE : url.pathname;
  if (!SHELL.includes(key)) return; // the API and everything else: straight to the network
  event.respondWith(
    caches.open(CACHE)
      .then((cache) => cache.match(key))
      .then((hit) => hit || fetch(request)),
  );
});
