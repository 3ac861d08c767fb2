// The supervisor's live view of queues and technicians, refreshed every 2 s.
import { $, clearError, showError, showState } from "/static/tapline.js";

const REFRESH_MS = 2000;

function percent(value) {
  return value === null ? "–" : `${Math.round(value * 100)} %`;
}

function seconds(value) {
  if (value === null) return "–";
  return value < 120 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

async function refresh() {
  try {
    const response = await fetch("/api/routing");
    const body = await response.json();
    if (!response.ok) throw body;
    $("queues").tBodies[0].replaceChildren(...body.queues.map((q) => {
      const tr = row([
        q.queue, String(q.waiting), seconds(q.longest_wait_s), String(q.available),
        String(q.busy), percent(q["30m"].service_level), percent(q.today.service_level),
        seconds(q["30m"].asa_s), seconds(q["30m"].aht_s), percent(q["30m"].abandon_rate),
      ]);
      tr.dataset.queue = q.queue;
      return tr;
    }));
    $("technicians").tBodies[0].replaceChildren(...body.technicians.map((t) => row([
      t.name, t.status, seconds(t.in_status_s), t.queues.join(", "), String(t.sessions_today),
    ])));
    showState($("state"), "live", `Updated ${new Date().toLocaleTimeString()}.`);
    clearError($("error"));
  } catch (error) {
    showError($("error"), error);
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
