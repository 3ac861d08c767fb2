// The player: the recording with its timeline beside it. Clicking an event seeks
// the video to it; markers sit on the scrubber; the preview strip and keyboard
// shortcuts move around; trainers add bookmarks and scores.
import { $, clearError, readBoot, showError, showState } from "/static/tapline.js";

const boot = readBoot();
const video = $("video");
const api = `/api/library/recordings/${boot.key}`;
let recording = null;
let marks = [];  // [{at, kind, li}] in time order: events and bookmarks

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

async function getJson(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw body;
  return body;
}

function postJson(url, body) {
  return getJson(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// Timeline time is the session clock; the video's zero is at start_s on it.
function videoTime(t) {
  const at = t - recording.start_s;
  return Math.min(Math.max(0, at), recording.duration_s || at);
}

function duration() {
  return Number.isFinite(video.duration) ? video.duration : recording.duration_s;
}

const SKIP = new Set(["t", "kind", "role"]);

// Words for the events people look for; anything else is shown field by field.
const WORDS = {
  created: (e) => `Session created${e.queue ? ` in queue ${e.queue}` : ""}`,
  join: (e) => `${e.role || "someone"} joined`,
  leave: (e) => `${e.role || "someone"} left${e.reason ? ` (${e.reason})` : ""}`,
  state: (e) => `Session ${e.state}`,
  assigned: (e) => `Assigned to ${e.technician}`,
  transfer: (e) => `Transferred to queue ${e.queue}`,
  disposition: (e) => `Disposition: ${e.code}${e.notes ? ` – ${e.notes}` : ""}`,
  end: (e) => `Ended: ${e.reason}`,
  recording: (e) => `Recording ${e.state}`,
  switch: (e) => `Switched to ${e.main || e.slate || e.layout}${e.second ? ` + ${e.second}` : ""}`,
  chat: (e) => `${e.name || "chat"}: ${e.text}`,
  question: (e) => `Question: ${e.text}`,
};

function describe(event) {
  if (WORDS[event.kind]) return WORDS[event.kind](event);
  return fields(event);
}

function fields(event) {
  const details = Object.entries(event)
    .filter(([name, value]) => !SKIP.has(name) && value !== "" && value !== null && typeof value !== "object")
    .map(([name, value]) => `${name}: ${value}`);
  const who = event.role ? `${event.role} ` : "";
  return `${who}${event.kind}${details.length ? ` (${details.join(", ")})` : ""}`;
}

export function seek(at, play = true) {
  video.currentTime = at;
  if (play) video.play().catch((error) => showError($("error"), error));
}

function item(at, words, kind) {
  const li = document.createElement("li");
  li.dataset.at = String(at);
  li.dataset.kind = kind;
  const time = document.createElement("span");
  time.className = "at";
  time.textContent = clock(at);
  li.append(time, words);
  li.addEventListener("click", () => seek(at));
  return li;
}

function drawTimeline() {
  marks = [];
  for (const event of recording.timeline) {
    const at = videoTime(event.t);
    marks.push({ at, kind: event.kind, li: item(at, describe(event), event.kind) });
  }
  for (const b of recording.bookmarks) {
    const li = item(b.t, `${b.author}: ${b.body}`, "bookmark");
    li.classList.add("bookmark");
    marks.push({ at: b.t, kind: "bookmark", li });
  }
  marks.sort((a, b) => a.at - b.at);
  $("timeline").replaceChildren(...marks.map((m) => m.li));
  drawMarkers();
}

function drawMarkers() {
  const total = duration();
  const scrubber = $("scrubber");
  scrubber.querySelectorAll(".marker").forEach((m) => m.remove());
  if (!total) return;
  for (const mark of marks) {
    const div = document.createElement("div");
    div.className = `marker ${mark.kind === "bookmark" ? "bookmark" : ""}`;
    div.style.left = `${(100 * mark.at) / total}%`;
    div.title = mark.li.textContent;
    scrubber.append(div);
  }
}

function drawStrip() {
  const strip = recording.strip;
  if (!strip) return;
  $("strip").replaceChildren(...strip.times.map((t, i) => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.style.width = `${strip.tile_width}px`;
    tile.style.height = `${strip.tile_height}px`;
    tile.style.backgroundImage = `url("${strip.url}")`;
    tile.style.backgroundPosition = `-${i * strip.tile_width}px 0`;
    tile.title = clock(t);
    tile.addEventListener("click", () => seek(t));
    return tile;
  }));
}

function drawGallery() {
  if (!recording.snapshots.length) return;
  $("gallery-box").hidden = false;
  $("gallery").replaceChildren(...recording.snapshots.map((s) => {
    const img = document.createElement("img");
    img.src = s.url;
    img.alt = `Snapshot ${s.file}`;
    if (s.t !== null) img.addEventListener("click", () => seek(videoTime(s.t)));
    return img;
  }));
}

function currentMark() {
  const now = video.currentTime;
  let index = -1;
  marks.forEach((m, i) => { if (m.at <= now + 0.05) index = i; });
  return index;
}

function onTime() {
  const total = duration();
  $("played").style.width = total ? `${(100 * video.currentTime) / total}%` : "0";
  $("bookmark-at").textContent = clock(video.currentTime);
  const index = currentMark();
  marks.forEach((m, i) => m.li.classList.toggle("current", i === index));
}

function step(direction) {
  const now = video.currentTime;
  const later = marks.filter((m) => (direction > 0 ? m.at > now + 0.25 : m.at < now - 0.25));
  if (!later.length) return;
  seek(direction > 0 ? later[0].at : later[later.length - 1].at, !video.paused);
}

function onKey(event) {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement
      || event.target instanceof HTMLSelectElement) return;
  const big = event.shiftKey ? 30 : 5;
  if (event.key === " ") {
    event.preventDefault();
    if (video.paused) video.play(); else video.pause();
  } else if (event.key === "ArrowRight") {
    event.preventDefault();
    video.currentTime = Math.min(duration(), video.currentTime + big);
  } else if (event.key === "ArrowLeft") {
    event.preventDefault();
    video.currentTime = Math.max(0, video.currentTime - big);
  } else if (event.key === "n") {
    step(1);
  } else if (event.key === "p") {
    step(-1);
  } else if (event.key === "b") {
    event.preventDefault();
    $("bookmark-body").focus();
  }
}

async function addBookmark(event) {
  event.preventDefault();
  try {
    const mark = await postJson(`${api}/bookmarks`, {
      t: Math.round(video.currentTime * 1000) / 1000,
      body: $("bookmark-body").value,
    });
    recording.bookmarks.push(mark);
    $("bookmark-body").value = "";
    drawTimeline();
    clearError($("error"));
  } catch (error) {
    showError($("error"), error);
  }
}

let forms = [];

function drawCriteria() {
  const form = forms.find((f) => String(f.id) === $("form").value);
  if (!form) return;
  $("criteria").replaceChildren(...form.criteria.map((c, i) => {
    const label = document.createElement("label");
    label.className = "row";
    const select = document.createElement("select");
    select.dataset.index = String(i);
    for (const [words, value] of [["Met", "1"], ["Partly", "0.5"], ["Not met", "0"], ["N/A", ""]]) {
      if (value === "" && c.critical) continue;
      select.append(new Option(words, value));
    }
    label.append(`${c.label} (weight ${c.weight}${c.critical ? ", critical" : ""}) `, select);
    return label;
  }));
}

function drawScores() {
  $("scores").replaceChildren(...recording.scores.map((s) => {
    const li = document.createElement("li");
    const failed = s.critical_failed ? " – critical item failed" : "";
    li.textContent = `${s.trainer}: ${s.score} %${failed}${s.comment ? ` – ${s.comment}` : ""}`;
    return li;
  }));
}

async function saveScore() {
  const answers = [...$("criteria").querySelectorAll("select")].map((s) =>
    (s.value === "" ? null : Number(s.value)));
  try {
    const result = await postJson(`${api}/scores`, {
      form: Number($("form").value), answers, comment: $("score-comment").value,
    });
    $("score-result").textContent = result.critical_failed
      ? "Saved: 0 % (a critical item failed)." : `Saved: ${result.score} %.`;
    recording.scores.push({ ...result, comment: $("score-comment").value });
    drawScores();
  } catch (error) {
    showError($("error"), error);
  }
}

async function loadForms() {
  forms = (await getJson("/api/library/forms")).forms;
  $("form").replaceChildren(...forms.map((f) => new Option(f.name, String(f.id))));
  drawCriteria();
}

// The clip is fetched, not navigated to: a refused range shows its reason here
// instead of replacing the player with the server's JSON.
async function exportClip(event) {
  event.preventDefault();
  clearError($("error"));
  const params = new URLSearchParams({ start: $("clip-start").value, end: $("clip-end").value });
  try {
    const response = await fetch(`/library/media/${boot.key}/clip.mp4?${params}`);
    if (!response.ok) throw await response.json();
    const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = named ? named[1] : "clip.mp4";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  } catch (error) {
    showError($("error"), error);
  }
}

// Deleting takes two clicks: the first asks, the second deletes.
async function deleteRecording() {
  const button = $("delete");
  if (button.dataset.armed !== "yes") {
    button.dataset.armed = "yes";
    button.textContent = "Click again to delete the video, timeline and bookmarks";
    return;
  }
  try {
    await getJson(api, { method: "DELETE" });
    showState($("state"), "deleted", "Deleted.");
    window.location.href = "/library";
  } catch (error) {
    showError($("error"), error);
  }
}

async function main() {
  try {
    recording = await getJson(api);
    const when = new Date(recording.started * 1000).toLocaleString();
    const who = recording.staff || "nobody";
    $("title").textContent = recording.kind === "room"
      ? `${recording.title || "Demo room"} · ${who} · ${when}`
      : `Support · ${who} · ${recording.queue || "direct"} · ${when}`;
    $("score-who").textContent = `Technician: ${who}`;
    $("export-json").href = `${api}/export.json`;
    $("clip-end").value = String(Math.min(10, Math.ceil(recording.duration_s)));
    if (recording.video) video.src = recording.video;
    drawTimeline();
    drawStrip();
    drawGallery();
    drawScores();
    showState($("state"), "ready", recording.video ? "Ready." : "This recording has no video.");
    await loadForms();
  } catch (error) {
    showError($("error"), error);
  }
}

video.addEventListener("timeupdate", onTime);
video.addEventListener("seeked", onTime);
video.addEventListener("loadedmetadata", drawMarkers);
video.addEventListener("playing", () => showState($("state"), "playing", "Playing."));
video.addEventListener("pause", () => showState($("state"), "paused", "Paused."));
video.addEventListener("error", () => showError($("error"), { reason: "The video could not be played." }));
$("scrubber").addEventListener("click", (event) => {
  const box = $("scrubber").getBoundingClientRect();
  seek(((event.clientX - box.left) / box.width) * duration(), !video.paused);
});
$("bookmark").addEventListener("submit", addBookmark);
$("form").addEventListener("change", drawCriteria);
$("score").addEventListener("click", saveScore);
$("clip").addEventListener("submit", exportClip);
if (boot.role === "admin") {
  $("admin-box").hidden = false;
  $("delete").addEventListener("click", deleteRecording);
}
document.addEventListener("keydown", onKey);
main();
