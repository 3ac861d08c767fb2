// The technician's console: make links, see and hear customers, end sessions.
import {
  $, PEER_WORDS, Signal, clearError, countFrames, makeOffer, readBoot, showError,
  showState,
} from "/static/tapline.js";
import { ConsoleTools } from "/static/console-tools.js";

const boot = readBoot();
// Admins and supervisors also reach the pages their role opens.
for (const link of document.querySelectorAll("#staff-nav a")) {
  link.hidden = !link.dataset.for.split(" ").includes(boot.role);
  if (!link.hidden) $("staff-nav").hidden = false;
}
const errorEl = $("error");
const stateEl = $("state");
const sessions = new Map(); // session id -> { el, pc, state }
let mic = null;
let camera = null;
let presence = null;
let team = []; // technicians signed in: { name, status, queues }
const offers = new Map(); // entry id -> { el, timer }

// What only works while the session is on; hidden once it has ended.
const LIVE_ONLY = ".stage, .camera-state, .tools, .chat-form";

const SESSION_WORDS = {
  waiting: "Customer is in; connecting…",
  connecting: "Connecting…",
  live: "Live",
};

async function openMic() {
  if (mic) return mic;
  try {
    mic = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0];
  } catch (error) {
    showError(errorEl, error);
    mic = null;
  }
  return mic;
}

function sessionView(id, summary) {
  let entry = sessions.get(id);
  if (!entry) {
    const el = $("session-template").content.firstElementChild.cloneNode(true);
    el.dataset.session = id;
    el.querySelector(".end").addEventListener("click", () => {
      signal.send("end", { session: id, reason: "technician pressed End" });
    });
    el.querySelector(".transfer").addEventListener("click", async () => {
      const queue = el.querySelector(".transfer-queue").value;
      const technician = el.querySelector(".transfer-technician").value;
      try {
        await signal.request("transfer", { session: id, queue, technician });
      } catch (error) {
        showError(errorEl, error);
      }
    });
    el.querySelector(".invite").addEventListener("click", async () => {
      const technician = el.querySelector(".expert-technician").value;
      const queue = el.querySelector(".expert-queue").value;
      const skill = el.querySelector(".expert-skill").value.trim();
      try {
        await signal.request("invite", { session: id, technician, queue, skill });
      } catch (error) {
        showError(errorEl, error);
      }
    });
    el.querySelector(".leave").addEventListener("click", () => {
      signal.request("leave", { session: id }).catch((error) => showError(errorEl, error));
    });
    el.querySelector(".wrap").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await signal.request("disposition", {
          session: id,
          code: el.querySelector(".disposition").value,
          notes: el.querySelector(".notes").value,
        });
      } catch (error) {
        showError(errorEl, error);
        return;
      }
      el.querySelector(".saved").hidden = false;
      el.querySelector(".wrap button").disabled = true;
    });
    countFrames(el.querySelector("video"));
    if (presence) {
      fillSelect(el.querySelector(".disposition"), presence.dispositions);
      fillSelect(el.querySelector(".transfer-queue"), presence.all_queues);
      fillSelect(el.querySelector(".expert-queue"), presence.all_queues);
    }
    fillTeam(el);
    $("sessions").append(el);
    entry = { el, pc: null, state: "waiting", connecting: false };
    entry.tools = new ConsoleTools({ signal, session: id, el, errorEl, me: boot.name });
    sessions.set(id, entry);
    $("no-sessions").hidden = true;
  }
  for (const live of entry.el.querySelectorAll(LIVE_ONLY)) live.hidden = false;
  entry.el.querySelector(".customer").textContent = `Customer ${summary.customer}`;
  // A console is either the session's technician or its added expert.
  entry.role = summary.expert && summary.expert === boot.name ? "expert" : "technician";
  const helping = entry.role === "expert";
  for (const controls of entry.el.querySelectorAll(".controls")) controls.hidden = helping;
  entry.el.querySelector(".expert-row").hidden = !helping;
  entry.el.querySelector(".helping").textContent = helping
    ? `Helping ${summary.technician} as an expert.` : "";
  const expertState = entry.el.querySelector(".expert-state");
  expertState.dataset.expert = summary.expert || "";
  expertState.textContent = summary.expert ? `${summary.expert} is helping.`
    : summary.invite ? `Inviting ${summary.invite}…` : "";
  entry.el.querySelector(".invite").disabled = Boolean(summary.expert || summary.invite);
  return entry;
}

async function connect(id, entry) {
  if (entry.connecting) return;
  entry.connecting = true;
  try {
    if (entry.pc) entry.pc.close();
    const pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
    entry.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    const voice = await openMic();
    pc.addTransceiver(voice || "audio", { direction: voice ? "sendrecv" : "recvonly" });
    entry.cameraTx = pc.addTransceiver(camera || "video", { direction: "sendonly" });
    const video = entry.el.querySelector("video");
    pc.addEventListener("track", ({ track, streams }) => {
      if (track.kind === "video") {
        video.srcObject = new MediaStream([track]);
      } else {
        const audio = new Audio();
        audio.srcObject = new MediaStream([track]);
        audio.play().catch(() => {});
        entry.audio = audio;
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      entry.el.querySelector(".state").dataset.peer = pc.connectionState;
      if (pc.connectionState !== "connected") {
        showState(entry.el.querySelector(".state"), pc.connectionState,
          PEER_WORDS[pc.connectionState]);
      }
    });
    const sdp = await makeOffer(pc);
    const answer = await signal.request("offer", { session: id, sdp });
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  } catch (error) {
    showError(errorEl, error);
  } finally {
    entry.connecting = false;
  }
}

function onSession(summary) {
  const entry = sessionView(summary.session, summary);
  entry.state = summary.state;
  const label = entry.el.querySelector(".state");
  let words = SESSION_WORDS[summary.state] || summary.state;
  if (!summary.present.customer) words = "Customer disconnected; waiting for them…";
  showState(label, summary.state, words);
  const needsPeer = !entry.pc || ["failed", "closed"].includes(entry.pc.connectionState)
    || summary.media[entry.role] === "none";
  if (summary.present.customer && needsPeer) connect(summary.session, entry);
  if (summary.recording_error && !entry.recordingTold) {
    entry.recordingTold = true;
    showError(errorEl, {
      reason: `Recording of customer ${summary.customer} stopped `
        + `(${summary.recording_error}); the call goes on.`,
    });
  }
}

function onEnded(message) {
  const entry = sessions.get(message.session);
  if (!entry) return;
  if (entry.pc) entry.pc.close();
  entry.pc = null;
  showState(entry.el.querySelector(".state"), "ended", `Ended: ${message.reason}`);
  for (const live of entry.el.querySelectorAll(LIVE_ONLY)) live.hidden = true;
  for (const controls of entry.el.querySelectorAll(".controls")) controls.hidden = true;
  entry.el.querySelector(".expert-row").hidden = true;
  if (presence && entry.role !== "expert" && !message.reason.startsWith("transferred")) {
    entry.el.querySelector(".wrap").hidden = false;
  }
}

function fillSelect(select, values) {
  select.replaceChildren(...values.map((value) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    return option;
  }));
}

// Colleagues to hand a customer to or to ask in: available ones, never myself.
function fillTeam(el) {
  const free = team.filter((t) => t.name !== boot.name && t.status === "available")
    .map((t) => t.name);
  for (const [selector, blank] of [[".transfer-technician", "(nobody: the queue)"],
    [".expert-technician", "(anyone free)"]]) {
    const select = el.querySelector(selector);
    const chosen = select.value;
    fillSelect(select, ["", ...free]);
    select.options[0].textContent = blank;
    if (free.includes(chosen)) select.value = chosen;
  }
}

function onTeam(message) {
  team = message.technicians;
  for (const entry of sessions.values()) fillTeam(entry.el);
}

const STATUS_WORDS = {
  available: "Available: customers will be offered to you.",
  busy: "Busy with a customer.",
  "wrap-up": "Wrapping up: no offers for a moment.",
  away: "Away: no customers will be offered to you.",
};

function onPresence(message) {
  presence = message;
  const label = $("presence-state");
  label.dataset.status = message.status;
  label.textContent = `${STATUS_WORDS[message.status] || message.status} ` +
    `Queues: ${message.queues.join(", ")}. Sessions today: ${message.sessions_today}.`;
  $("status").value = message.status === "away" ? "away" : "available";
  $("auto-answer").checked = message.auto_answer;
  for (const entry of sessions.values()) {
    fillSelect(entry.el.querySelector(".disposition"), message.dispositions);
    fillSelect(entry.el.querySelector(".transfer-queue"), message.all_queues);
    fillSelect(entry.el.querySelector(".expert-queue"), message.all_queues);
  }
}

function onQueues(message) {
  $("waiting-count").textContent = String(message.waiting.length);
  $("waiting").replaceChildren(...message.waiting.map((w) => {
    const item = document.createElement("li");
    item.textContent = `${w.customer} in ${w.queue}, waiting ${Math.round(w.waited_s)} s` +
      (w.priority ? `, priority ${w.priority}` : "") + (w.state === "offered" ? " (offered)" : "");
    return item;
  }));
}

function dropOffer(id) {
  const offer = offers.get(id);
  if (!offer) return;
  clearInterval(offer.timer);
  offer.el.remove();
  offers.delete(id);
}

function onOffered(message) {
  dropOffer(message.entry);
  const el = $("offer-template").content.firstElementChild.cloneNode(true);
  el.dataset.entry = message.entry;
  el.querySelector(".who").textContent = message.expert_for
    ? `${message.expert_for} asks for your help with customer ${message.customer}`
    : `${message.transfer ? "Transferred to you: c" : "C"}ustomer ` +
      `${message.customer} (${message.queue})`;
  el.dataset.expert = message.expert_for ? "true" : "false";
  const started = Date.now();
  const detail = el.querySelector(".detail");
  const tick = () => {
    const left = Math.max(0, Math.round(message.timeout_s - (Date.now() - started) / 1000));
    detail.textContent = `waited ${Math.round(message.waited_s)} s; ${left} s to answer`;
  };
  tick();
  el.querySelector(".accept").addEventListener("click", async () => {
    try {
      await signal.request("accept", { entry: message.entry });
    } catch (error) {
      showError(errorEl, error);
    }
    dropOffer(message.entry);
  });
  el.querySelector(".decline").addEventListener("click", () => {
    signal.send("decline", { entry: message.entry });
    dropOffer(message.entry);
  });
  $("offers").append(el);
  offers.set(message.entry, { el, timer: setInterval(tick, 1000) });
}

const signal = new Signal({
  onOpen: async () => {
    try {
      await signal.request("join");
      showState(stateEl, "ready", `Signed in as ${boot.name}. Ready for customers.`);
      clearError(errorEl);
    } catch (error) {
      showError(errorEl, error);
    }
  },
  onMessage: (message) => {
    const tools = message.session && sessions.get(message.session);
    if (tools && tools.tools.receive(message)) return;
    if (message.type === "session") onSession(message);
    else if (message.type === "ended") onEnded(message);
    else if (message.type === "presence") onPresence(message);
    else if (message.type === "queues") onQueues(message);
    else if (message.type === "team") onTeam(message);
    else if (message.type === "offered") onOffered(message);
    else if (message.type === "withdrawn") dropOffer(message.entry);
    else if (message.type === "error") showError(errorEl, message);
  },
  onClose: () => showState(stateEl, "reconnecting", "Connection lost, reconnecting…"),
});

async function newLink() {
  clearError(errorEl);
  try {
    const response = await fetch("/api/links", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ kind: "direct" }),
    });
    const body = await response.json();
    if (!response.ok) throw body;
    $("link-url").value = body.url;
    $("link-qr").innerHTML = body.qr_svg;
    $("link-box").hidden = false;
  } catch (error) {
    showError(errorEl, error);
  }
}

async function toggleCamera() {
  const button = $("camera");
  try {
    if (camera) {
      camera.stop();
      camera = null;
    } else {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      camera = stream.getVideoTracks()[0];
    }
    for (const entry of sessions.values()) {
      if (entry.cameraTx) await entry.cameraTx.sender.replaceTrack(camera);
    }
    button.setAttribute("aria-pressed", camera ? "true" : "false");
    button.textContent = camera ? "Turn my camera off" : "Turn my camera on";
  } catch (error) {
    showError(errorEl, error);
  }
}

$("who").textContent = boot.name ? `(${boot.name})` : "";
$("new-link").addEventListener("click", newLink);
$("copy").addEventListener("click", () => navigator.clipboard.writeText($("link-url").value));
$("camera").addEventListener("click", toggleCamera);
$("status").addEventListener("change", () => {
  signal.request("status", { status: $("status").value })
    .catch((error) => showError(errorEl, error));
});
$("auto-answer").addEventListener("change", () => {
  signal.request("auto_answer", { on: $("auto-answer").checked })
    .catch((error) => showError(errorEl, error));
});
window.addEventListener("unhandledrejection", (event) => showError(errorEl, event.reason));
signal.connect();
