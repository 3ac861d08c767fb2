// The technician's console: make links, see and hear customers, end sessions.
import {
  $, PEER_WORDS, Signal, clearError, countFrames, makeOffer, readBoot, showError,
  showState,
} from "/static/tapline.js";

const boot = readBoot();
const errorEl = $("error");
const stateEl = $("state");
const sessions = new Map(); // session id -> { el, pc, state }
let mic = null;
let camera = null;

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
    countFrames(el.querySelector("video"));
    $("sessions").append(el);
    entry = { el, pc: null, state: "waiting", connecting: false };
    sessions.set(id, entry);
    $("no-sessions").hidden = true;
  }
  entry.el.querySelector(".customer").textContent = `Customer ${summary.customer}`;
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
    || summary.media.technician === "none";
  if (summary.present.customer && needsPeer) connect(summary.session, entry);
}

function onEnded(message) {
  const entry = sessions.get(message.session);
  if (!entry) return;
  if (entry.pc) entry.pc.close();
  entry.pc = null;
  showState(entry.el.querySelector(".state"), "ended", `Ended: ${message.reason}`);
  entry.el.querySelector(".end").hidden = true;
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
    if (message.type === "session") onSession(message);
    else if (message.type === "ended") onEnded(message);
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
window.addEventListener("unhandledrejection", (event) => showError(errorEl, event.reason));
signal.connect();
