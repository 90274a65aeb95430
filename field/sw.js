// 网格巡查 service worker: keeps the app shell in a cache, so the app opens without network.
// The API (/api/...) is never cached here: tasks and reports live in IndexedDB (app.js).
"use strict";
const SHELL = "gridwatch-field-v1";
const FILES = ["./", "index.html", "app.js", "style.css", "manifest.webmanifest", "icon-192.png", "icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== SHELL).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith("/field/")) {
    return;  // the API and everything else go to the network as usual
  }
  // the network first (a new version when online), the cache when offline
  event.respondWith(
    fetch(event.request)
      .then((answer) => {
        if (answer.ok) {
          const copy = answer.clone();
          caches.open(SHELL).then((cache) => cache.put(event.request, copy));
        }
        return answer;
      })
      .catch(() => caches.match(event.request, {ignoreSearch: true})
        .then((found) => found || caches.match("index.html"))));
});
