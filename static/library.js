// The recordings library: newest first, filters and search, keyset paging,
// per-technician score trend, and (for admins) scorecard forms.
import { $, clearError, readBoot, showError, showState } from "/static/tapline.js";

const boot = readBoot();
let next = null;

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

async function getJson(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw body;
  return body;
}

function cell(tr, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  tr.append(td);
}

function row(r) {
  const tr = document.createElement("tr");
  tr.dataset.key = r.key;
  tr.dataset.id = r.id;
  const link = document.createElement("a");
  link.href = r.player;
  if (r.thumbnail) {
    const img = document.createElement("img");
    img.src = r.thumbnail;
    img.alt = "";
    img.loading = "lazy";
    link.append(img);
  } else {
    link.textContent = r.has_video ? "Open" : "No video";
  }
  cell(tr, link);
  cell(tr, new Date(r.started * 1000).toLocaleString());
  cell(tr, clock(r.duration_s));
  cell(tr, r.staff || "–");
  cell(tr, r.kind === "room" ? "Demo room" : "Support");
  cell(tr, r.kind === "room" ? r.title : r.queue);
  cell(tr, r.disposition || "–");
  tr.addEventListener("click", (event) => {
    if (!(event.target instanceof HTMLAnchorElement)) window.location.href = r.player;
  });
  return tr;
}

function query() {
  const params = new URLSearchParams();
  for (const name of ["q", "kind", "staff", "queue", "disposition", "since", "until"]) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  params.set("limit", "50");
  return params;
}

async function load(more = false) {
  try {
    const params = query();
    if (more && next) params.set("cursor", next);
    const body = await getJson(`/api/library/recordings?${params}`);
    const rows = body.recordings.map(row);
    const tbody = $("recordings").tBodies[0];
    if (more) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    next = body.next;
    $("more").hidden = !next;
    const count = tbody.rows.length;
    showState($("state"), "loaded", count ? `${count} recordings shown.` : "No recordings match.");
    clearError($("error"));
  } catch (error) {
    showError($("error"), error);
  }
}

async function loadTrend() {
  const who = $("trend-who").value;
  if (!who) return;
  try {
    const body = await getJson(`/api/library/trend?technician=${encodeURIComponent(who)}`);
    $("trend").tBodies[0].replaceChildren(...body.weeks.map((w) => {
      const tr = document.createElement("tr");
      cell(tr, new Date(w.week_start * 1000).toLocaleDateString());
      cell(tr, String(w.count));
      cell(tr, w.average === null ? "–" : `${w.average} %`);
      cell(tr, String(w.critical_fails));
      return tr;
    }));
    const scored = body.weeks.filter((w) => w.average !== null);
    $("trend-words").textContent = scored.length >= 2
      ? `From ${scored[0].average} % to ${scored[scored.length - 1].average} % over the period.`
      : "Not enough scores yet for a trend.";
  } catch (error) {
    showError($("error"), error);
  }
}

async function loadStaff() {
  const body = await getJson("/api/library/trend");
  $("trend-who").replaceChildren(...body.technicians.map((name) => new Option(name, name)));
  await loadTrend();
}

async function loadForms() {
  const body = await getJson("/api/library/forms");
  $("forms").replaceChildren(...body.forms.map((f) => {
    const li = document.createElement("li");
    const parts = f.criteria.map((c) => `${c.label} (${c.weight}${c.critical ? ", critical" : ""})`);
    li.textContent = `${f.name}: ${parts.join("; ")}`;
    return li;
  }));
}

// Empty means no; a word we do not know goes to the server as it is, which
// refuses it, rather than quietly making a critical criterion an ordinary one.
function criticalFlag(word) {
  if (/^(critical|yes|true)$/i.test(word)) return true;
  if (/^(|no|false)$/i.test(word)) return false;
  return word;
}

async function addForm(event) {
  event.preventDefault();
  const criteria = $("form-criteria").value.split("\n").filter((l) => l.trim()).map((line) => {
    const [label, weight, critical] = line.split("|").map((p) => p.trim());
    return { label, weight: Number(weight || 1), critical: criticalFlag(critical || "") };
  });
  clearError($("error"));
  try {
    await getJson("/api/library/forms", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("form-name").value, criteria }),
    });
    $("new-form").reset();
    await loadForms();
  } catch (error) {
    showError($("error"), error);
  }
}

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
$("more").addEventListener("click", () => load(true));
$("trend-who").addEventListener("change", loadTrend);
if (boot.role === "admin") {
  $("forms-box").hidden = false;
  $("new-form").addEventListener("submit", addForm);
  loadForms().catch((error) => showError($("error"), error));
}
load();
loadStaff().catch((error) => showError($("error"), error));
