// The customer's page: one tap starts the camera and connects to the technician.
import {
  $, PEER_WORDS, Signal, clearError, countFrames, makeOffer, readBoot, showError,
  showState,
} from "/static/tapline.js";
import { CustomerTools } from "/static/customer-tools.js";

const boot = readBoot();
// Say before the camera starts that the call is recorded, when it is.
$("recorded-note").hidden = !boot.recorded;
const stateEl = $("state");
const errorEl = $("error");
let media = null;
let pc = null;
let cameraSender = null;
let ended = false;

let connecting = false;

const SESSION_WORDS = {
  queued: "You're in line. Keep this page open.",
  waiting: "A technician is ready. Connecting you…",
  connecting: "Connecting you to the technician…",
  live: "Live: the technician can see and hear you.",
};

async function openCamera() {
  // Back camera preferred; `ideal` lets any camera serve where there is none.
  const video = { facingMode: { ideal: "environment" }, width: { ideal: 1280 },
    height: { ideal: 720 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch (error) {
    if (error.name === "NotAllowedError" || error.name === "SecurityError") {
      throw error;
    }
    // No microphone (or it is busy): carry on with the camera alone.
    return await navigator.mediaDevices.getUserMedia({ video, audio: false });
  }
}

async function connectPeer() {
  if (connecting) return;
  connecting = true;
  try {
    await makePeer();
  } catch (error) {
    showError(errorEl, error);
  } finally {
    connecting = false;
  }
}

function showQueue(message) {
  const place = $("queue-place");
  place.hidden = false;
  const minutes = message.estimated_wait_s === null
    ? null : Math.max(1, Math.round(message.estimated_wait_s / 60));
  place.dataset.position = String(message.position);
  place.dataset.technician = message.technician || "";
  if (message.technician) {
    // Handed on to a named technician: no line to wait in, just their answer.
    place.textContent = `You're being connected to ${message.technician}.`;
    $("queue-wait").textContent = "Please stay on this page.";
    return;
  }
  place.textContent = message.position === 1
    ? "You're next in line." : `You're number ${message.position} in line.`;
  $("queue-wait").textContent = minutes === null
    ? "We'll connect you as soon as someone is free."
    : `Estimated wait: about ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}

async function makePeer() {
  if (pc) pc.close();
  pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
  const [camera] = media.getVideoTracks();
  const [mic] = media.getAudioTracks();
  const cameraTx = pc.addTransceiver(camera, { direction: "sendonly", streams: [media] });
  cameraSender = cameraTx.sender;
  pc.addTransceiver(mic || "audio", { direction: mic ? "sendrecv" : "recvonly" });
  pc.addTransceiver("video", { direction: "recvonly" });
  try {
    const params = cameraTx.sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await cameraTx.sender.setParameters(params);
  } catch (error) {
    // Older browsers lack degradationPreference; the default is fine there.
  }
  pc.addEventListener("track", ({ track }) => {
    if (track.kind === "audio") {
      $("technician-audio").srcObject = new MediaStream([track]);
    } else {
      const inset = $("technician-video");
      inset.srcObject = new MediaStream([track]);
      track.addEventListener("unmute", () => { inset.hidden = false; });
      track.addEventListener("mute", () => { inset.hidden = true; });
    }
  });
  pc.addEventListener("connectionstatechange", () => {
    if (!ended && pc.connectionState !== "connected") {
      showState(stateEl, pc.connectionState, PEER_WORDS[pc.connectionState]);
    }
  });
  const settings = camera.getSettings();
  const sdp = await makeOffer(pc);
  const answer = await signal.request("offer", {
    session: boot.session, sdp, width: settings.width || 0, height: settings.height || 0,
  });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

function finish(reason) {
  ended = true;
  signal.stop();
  if (pc) pc.close();
  if (media) for (const track of media.getTracks()) track.stop();
  for (const id of ["end", "stage", "pause", "chat-form", "frozen-note", "queue"]) {
    $(id).hidden = true;
  }
  showState(stateEl, "ended", endedWords(reason));
}

// The server's reason is for logs and staff ("ended by customer: …"); say it in
// the customer's words where we know it.
function endedWords(reason) {
  if (reason.startsWith("ended by customer")) return "You ended the session. Thank you.";
  if (reason.startsWith("ended by technician")) {
    return "The technician ended the session. Thank you.";
  }
  return `The session has ended: ${reason}.`;
}

const signal = new Signal({
  onOpen: async () => {
    try {
      await signal.request("join", { token: boot.token });
      clearError(errorEl);
    } catch (error) {
      showError(errorEl, error);
      if (error.code === "ended" || error.code === "expired") finish(error.reason);
      // Several servers: this session's media lives on another one; the link
      // itself sends us there.
      if (error.code === "moved") location.reload();
    }
  },
  onMessage: (message) => {
    if (tools.receive(message)) return;
    if (message.type === "session") {
      let words = SESSION_WORDS[message.state];
      if (message.state === "live" && message.expert) {
        words = `Live: the technician and an expert, ${message.expert}, can see and hear you.`;
      }
      if (words) showState(stateEl, message.state, words);
      const queued = message.state === "queued";
      $("queue").hidden = !queued;
      $("end").textContent = queued ? "Leave the queue" : "End";
      // Media starts once a technician is assigned (and again after a reconnect).
      if (!queued && message.media.customer === "none") connectPeer();
    } else if (message.type === "queue") {
      showQueue(message);
    } else if (message.type === "ended") {
      finish(message.reason);
    } else if (message.type === "error") {
      showError(errorEl, message);
      if (message.code === "replaced") finish("it continues in another tab");
    }
  },
  onClose: () => {
    if (!ended) showState(stateEl, "reconnecting", "Connection lost, reconnecting…");
  },
});

const tools = new CustomerTools({
  signal, boot, errorEl, media: () => media, sender: () => cameraSender,
});

async function start() {
  clearError(errorEl);
  $("start").disabled = true;
  showState(stateEl, "camera", "Starting your camera…");
  try {
    media = await openCamera();
  } catch (error) {
    showError(errorEl, error);
    showState(stateEl, "idle", "Your camera is not on yet.");
    $("start").textContent = "Try again";
    $("start").disabled = false;
    return;
  }
  $("start").hidden = true;
  $("intro").hidden = true;
  $("stage").hidden = false;
  $("preview").srcObject = media;
  $("end").hidden = false;
  countFrames($("technician-video"));
  tools.start();
  showState(stateEl, "connecting", "Connecting…");
  signal.connect();
}

$("start").addEventListener("click", start);
$("end").addEventListener("click", () => {
  signal.send("end", { session: boot.session, reason: "customer pressed End" });
});
window.addEventListener("unhandledrejection", (event) => showError(errorEl, event.reason));
