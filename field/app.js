// 网格巡查: the inspector's field app. Tasks and reports live in IndexedDB on the device; a report is saved to the
// outbox the moment it is written and sent through the HTTP API when the network is there, once per
// Idempotency-Key however often it is retried. Plain JavaScript, no build step, nothing from other hosts.
"use strict";

const TEXT = {
  zh: {
    app: "网格巡查", tasks: "我的任务", outbox: "待发送", sync: "同步", signOut: "退出", username: "用户名",
    password: "密码", signIn: "登录", finding: "结果", note: "说明", locate: "获取位置", photos: "照片",
    save: "保存并发送", back: "返回", online: "在线", offline: "离线", lang: "English",
    noTasks: "没有任务。", loaded: "任务已于 {time} 更新，离线可用。", notLoaded: "离线：显示上次保存的任务。",
    due: "截止 {time}", overdue: "已超期", state: "状态：{state}", place: "地点：{place}",
    fix: "位置 {lat}, {lng}（精度 {acc} 米）", noFix: "没有位置", locating: "正在获取位置…",
    noGeo: "无法获取位置：{reason}", photoCount: "已选 {n} 张照片", tooMany: "最多 {n} 张照片",
    saved: "已保存到待发送。", waiting: "等待发送", sent: "已送达", failed: "发送失败", conflict: "有冲突",
    emptyOutbox: "待发送为空。", reason: "原因：{reason}", signInFailed: "登录失败：{reason}",
    needFinding: "请选择结果。", network: "网络不通，联网后自动发送",
    st_assigned: "已分派", st_in_progress: "处理中", st_reported: "已上报", st_verified: "已核实", st_closed: "已关闭",
    st_rejected: "被拒绝", st_escalated: "已升级", st_withdrawn: "已撤销",
    geo1: "未获定位授权（请在浏览器设置中允许本站使用位置）", geo2: "暂时无法定位", geo3: "定位超时，请再试一次",
  },
  en: {
    app: "Field inspection", tasks: "My tasks", outbox: "Outbox", sync: "Sync", signOut: "Sign out",
    username: "Username", password: "Password", signIn: "Sign in", finding: "Finding", note: "Note",
    locate: "Get position", photos: "Photos", save: "Save and send", back: "Back", online: "Online",
    offline: "Offline", lang: "中文", noTasks: "No tasks.", loaded: "Tasks updated at {time}, kept for offline use.",
    notLoaded: "Offline: showing the tasks saved last time.", due: "due {time}", overdue: "overdue",
    state: "State: {state}", place: "Place: {place}", fix: "Position {lat}, {lng} (±{acc} m)", noFix: "No position",
    locating: "Getting the position…", noGeo: "No position: {reason}", photoCount: "{n} photos chosen",
    tooMany: "At most {n} photos", saved: "Saved to the outbox.", waiting: "Waiting", sent: "Sent",
    failed: "Failed", conflict: "Conflict", emptyOutbox: "The outbox is empty.", reason: "Reason: {reason}",
    signInFailed: "Sign-in failed: {reason}", needFinding: "Choose a finding.",
    network: "No network; it is sent when the network is back",
    st_assigned: "assigned", st_in_progress: "in progress", st_reported: "reported", st_verified: "verified",
    st_closed: "closed", st_rejected: "rejected", st_escalated: "escalated", st_withdrawn: "withdrawn",
    geo1: "location not allowed (allow it for this site in the browser's settings)", geo2: "position unavailable",
    geo3: "timed out; try again",
  },
};

const state = {lang: "zh", token: null, caps: null, task: null, photos: [], fix: null, syncing: false};

// -- IndexedDB ------------------------------------------------------------------------------------------------

let dbPromise = null;

function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const open = indexedDB.open("gridwatch-field", 1);
      open.onupgradeneeded = () => {
        const d = open.result;
        d.createObjectStore("kv");
        d.createObjectStore("tasks", {keyPath: "id"});
        d.createObjectStore("outbox", {keyPath: "key"});
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }
  return dbPromise;
}

async function run(storeName, mode, work) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(storeName, mode);
    const result = work(tx.objectStore(storeName));
    tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

const kvGet = (key) => run("kv", "readonly", (s) => s.get(key));
const kvSet = (key, value) => run("kv", "readwrite", (s) => s.put(value, key));
const allOf = (name) => run(name, "readonly", (s) => s.getAll());
const putOne = (name, value) => run(name, "readwrite", (s) => s.put(value));
const getOne = (name, key) => run(name, "readonly", (s) => s.get(key));

// -- text -----------------------------------------------------------------------------------------------------

function t(key, params) {
  let text = (TEXT[state.lang] || TEXT.zh)[key] || key;
  for (const [name, value] of Object.entries(params || {})) {
    text = text.split("{" + name + "}").join(String(value));
  }
  return text;
}

function localTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return moment.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB",
    {timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children || []) node.append(child);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((node) => { node.textContent = t(node.dataset.t); });
  document.getElementById("lang").textContent = t("lang");
  showNetwork();
}

function showNetwork() {
  const badge = document.getElementById("net");
  badge.textContent = navigator.onLine ? t("online") : t("offline");
  badge.className = navigator.onLine ? "badge" : "badge offline";
}

function show(id) {
  for (const section of ["signin", "list", "task", "outbox"]) {
    document.getElementById(section).hidden = section !== id;
  }
  document.getElementById("tabs").hidden = id === "signin";
}

// -- the API --------------------------------------------------------------------------------------------------

function headers(extra) {
  return Object.assign({"Authorization": "Bearer " + state.token,
                        "Accept-Language": state.lang === "zh" ? "zh-CN" : "en"}, extra || {});
}

async function errorText(answer) {
  try {
    const body = await answer.json();
    return (body.error && body.error.message) || answer.statusText;
  } catch (e) {
    return answer.status + " " + answer.statusText;
  }
}

async function signIn(event) {
  event.preventDefault();
  const out = document.getElementById("signin-error");
  out.textContent = "";
  try {
    const answer = await fetch("/api/v1/sessions", {
      method: "POST", headers: {"Content-Type": "application/json",
                                "Accept-Language": state.lang === "zh" ? "zh-CN" : "en"},
      body: JSON.stringify({username: document.getElementById("username").value,
                            password: document.getElementById("password").value})});
    if (!answer.ok) {
      out.textContent = t("signInFailed", {reason: await errorText(answer)});
      return;
    }
    const session = await answer.json();
    state.token = session.token;
    state.caps = session.photo_caps;
    await kvSet("session", {token: session.token, username: session.username, caps: session.photo_caps});
    document.getElementById("password").value = "";
    await refreshTasks();
    await showList();
  } catch (e) {
    out.textContent = t("signInFailed", {reason: t("network")});
  }
}

async function signOut() {
  if (navigator.onLine && state.token) {
    fetch("/api/v1/sessions", {method: "DELETE", headers: headers()}).catch(() => {});
  }
  state.token = null;
  await kvSet("session", null);
  show("signin");
}

async function refreshTasks() {
  const answer = await fetch("/api/v1/tasks?mine=true&limit=500", {headers: headers()});
  if (answer.status === 401) {
    await signOut();
    return;
  }
  if (!answer.ok) throw new Error(await errorText(answer));
  const page = await answer.json();
  const details = [];
  for (const row of page.tasks) {
    const one = await fetch("/api/v1/tasks/" + row.id, {headers: headers()});
    if (!one.ok) continue;
    const task = await one.json();
    task.seen_event_id = task.events.length ? Math.max(...task.events.map((e) => e.id)) : null;
    task.overdue = Boolean(row.overdue) || (task.due_at && new Date(task.due_at) < new Date());
    details.push(task);
  }
  await run("tasks", "readwrite", (s) => {
    s.clear();
    for (const task of details) s.put(task);
  });
  await kvSet("loaded_at", new Date().toISOString());
}

// -- screens --------------------------------------------------------------------------------------------------

async function showList() {
  show("list");
  const loaded = await kvGet("loaded_at");
  document.getElementById("list-note").textContent =
    navigator.onLine ? t("loaded", {time: localTime(loaded)}) : t("notLoaded");
  const tasks = (await allOf("tasks")).sort((a, b) =>
    (b.overdue - a.overdue) || String(a.due_at).localeCompare(String(b.due_at)));
  const list = document.getElementById("tasks");
  list.replaceChildren();
  if (!tasks.length) list.append(el("li", {class: "note", text: t("noTasks")}));
  for (const task of tasks) {
    const meta = [t("due", {time: localTime(task.due_at)}), t("state", {state: stateName(task.state)})];
    list.append(el("li", {}, [el("button", {type: "button", "data-task": task.id, onclick: () => openTask(task.id)}, [
      el("div", {text: task.title_text || ("#" + task.id)}),
      el("div", {class: task.overdue ? "meta overdue" : "meta",
                 text: (task.overdue ? t("overdue") + " · " : "") + meta.join(" · ")})])]));
  }
}

async function openTask(id) {
  const task = await getOne("tasks", id);
  state.task = task;
  state.photos = [];
  state.fix = null;
  show("task");
  document.getElementById("task-title").textContent = task.title_text || ("#" + task.id);
  const place = [task.place && task.place.township, task.place && task.place.village].filter(Boolean).join(" ");
  document.getElementById("task-meta").textContent =
    [t("due", {time: localTime(task.due_at)}), t("state", {state: stateName(task.state)}), place ? t("place", {place}) : ""]
      .filter(Boolean).join(" · ");
  const select = document.getElementById("finding");
  select.replaceChildren(el("option", {value: "", text: "—"}));
  for (const finding of task.findings || []) select.append(el("option", {value: finding.value, text: finding.label}));
  document.getElementById("note").value = "";
  document.getElementById("photo").value = "";
  document.getElementById("photo-note").textContent = "";
  document.getElementById("report-error").textContent = "";
  locate();
}

// a task state in the reader's language (the id itself when the app does not know it)
function stateName(value) {
  const key = "st_" + value;
  const text = t(key);
  return text === key ? value : text;
}

function locate() {
  const out = document.getElementById("fix");
  if (!navigator.geolocation) {
    out.textContent = t("noGeo", {reason: "—"});
    return;
  }
  out.textContent = t("locating");
  navigator.geolocation.getCurrentPosition((where) => {
    state.fix = {lat: where.coords.latitude, lng: where.coords.longitude, accuracy: where.coords.accuracy,
                 observed_at: new Date(where.timestamp || Date.now()).toISOString()};
    out.textContent = t("fix", {lat: state.fix.lat.toFixed(5), lng: state.fix.lng.toFixed(5),
                                acc: Math.round(state.fix.accuracy)});
  }, (error) => {
    const known = {1: "geo1", 2: "geo2", 3: "geo3"}[error.code];
    out.textContent = t("noGeo", {reason: known ? t(known) : (error.message || error.code)});
  }, {enableHighAccuracy: true, timeout: 20000, maximumAge: 60000});
}

// a photo resized on the device to the app's caps (pixels and bytes) before it is stored
async function resized(file) {
  const caps = state.caps || {};
  const maxPixels = (caps.photo_max_megapixels || 0) * 1e6;
  const maxBytes = (caps.photo_max_mb || 0) * 1048576;
  const image = await createImageBitmap(file);
  let scale = maxPixels ? Math.min(1, Math.sqrt(maxPixels / (image.width * image.height))) : 1;
  for (;;) {
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.floor(image.width * scale));
    canvas.height = Math.max(1, Math.floor(image.height * scale));
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    if (!maxBytes || blob.size <= maxBytes || canvas.width < 64) return blob;
    scale *= 0.8;
  }
}

async function choosePhotos() {
  const input = document.getElementById("photo");
  const note = document.getElementById("photo-note");
  const most = (state.caps && state.caps.photo_max_count) || 1;
  const files = Array.from(input.files || []);
  for (const file of files) {
    if (state.photos.length >= most) {
      note.textContent = t("tooMany", {n: most});
      break;
    }
    const name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
    state.photos.push({name, blob: await resized(file)});
  }
  input.value = "";
  note.textContent = t("photoCount", {n: state.photos.length});
}

function newKey() {
  if (self.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function saveReport(event) {
  event.preventDefault();
  const finding = document.getElementById("finding").value;
  if (!finding) {
    document.getElementById("report-error").textContent = t("needFinding");
    return;
  }
  const task = state.task;
  const report = {finding, note: document.getElementById("note").value};
  if (state.fix) Object.assign(report, state.fix);
  if (task.seen_event_id !== null && task.seen_event_id !== undefined) report.seen_event_id = task.seen_event_id;
  const item = {key: newKey(), task_id: task.id, title: task.title_text || ("#" + task.id), report,
                photos: state.photos, status: "waiting", reason: "", saved_at: new Date().toISOString()};
  await putOne("outbox", item);  // saved at once: from here on the report survives reloads and days offline
  state.photos = [];
  await showOutbox(t("saved"));
  sync();
}

async function showOutbox(message) {
  show("outbox");
  const items = (await allOf("outbox")).sort((a, b) => b.saved_at.localeCompare(a.saved_at));
  const list = document.getElementById("outbox-items");
  list.replaceChildren();
  if (message) list.append(el("li", {class: "outbox-item note", text: message}));
  if (!items.length) list.append(el("li", {class: "outbox-item note", text: t("emptyOutbox")}));
  for (const item of items) {
    const lines = [el("span", {class: "status " + item.status, "data-status": item.status, text: t(item.status)}),
                   el("div", {text: item.title}),
                   el("div", {class: "meta", text: localTime(item.saved_at) + " · " + t("photoCount",
                                                                                   {n: item.photos.length})})];
    if (item.reason) lines.push(el("div", {class: item.status === "waiting" ? "meta" : "error",
                                           text: t("reason", {reason: item.reason})}));
    list.append(el("li", {class: "outbox-item", "data-key": item.key}, lines));
  }
}

// -- sync -----------------------------------------------------------------------------------------------------

async function sendOne(item) {
  const form = new FormData();
  form.append("report", JSON.stringify(item.report));
  for (const photo of item.photos) form.append("photo", photo.blob, photo.name);
  let answer;
  try {
    answer = await fetch("/api/v1/tasks/" + item.task_id + "/reports",
                         {method: "POST", headers: headers({"Idempotency-Key": item.key}), body: form});
  } catch (e) {
    item.reason = t("network");  // stays waiting: sent again when the network is back
    return item;
  }
  if (answer.ok) {
    item.status = "sent";
    item.reason = "";
    item.sent_at = new Date().toISOString();
  } else if (answer.status === 401) {
    item.reason = await errorText(answer);  // waiting until the inspector signs in again
  } else if (answer.status >= 500 || answer.status === 429) {
    item.reason = await errorText(answer);  // waiting: tried again later
  } else {
    item.status = answer.status === 409 ? "conflict" : "failed";
    item.reason = await errorText(answer);
  }
  return item;
}

async function sync() {
  if (state.syncing || !state.token || !navigator.onLine) return;
  state.syncing = true;
  try {
    for (const item of await allOf("outbox")) {
      if (item.status !== "waiting") continue;
      await putOne("outbox", await sendOne(item));
    }
    try {
      await refreshTasks();
    } catch (e) { /* the list stays as it was */ }
  } finally {
    state.syncing = false;
  }
  if (!document.getElementById("outbox").hidden) await showOutbox();
  else if (!document.getElementById("list").hidden) await showList();
}

// -- start ----------------------------------------------------------------------------------------------------

async function start() {
  state.lang = (await kvGet("lang")) || "zh";
  applyLanguage();
  document.getElementById("lang").addEventListener("click", async () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    await kvSet("lang", state.lang);
    applyLanguage();
  });
  document.getElementById("signin-form").addEventListener("submit", signIn);
  document.getElementById("report-form").addEventListener("submit", saveReport);
  document.getElementById("photo").addEventListener("change", choosePhotos);
  document.getElementById("locate").addEventListener("click", locate);
  document.getElementById("back").addEventListener("click", showList);
  document.getElementById("to-list").addEventListener("click", showList);
  document.getElementById("to-outbox").addEventListener("click", () => showOutbox());
  document.getElementById("sync").addEventListener("click", sync);
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("online", () => { showNetwork(); sync(); });
  window.addEventListener("offline", showNetwork);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch(() => {});
  const session = await kvGet("session");
  if (session && session.token) {
    state.token = session.token;
    state.caps = session.caps;
    await showList();
    sync();
  } else {
    show("signin");
  }
  setInterval(sync, 30000);  // retries what is waiting while the app is open
}

start();
