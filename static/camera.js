// A phone as one more camera of a demo room: one tap, back camera preferred.
import {
  $, PEER_WORDS, Signal, clearError, makeOffer, readBoot, showError, showState,
} from "/static/tapline.js";

const boot = readBoot();
const stateEl = $("state");
const errorEl = $("error");
let media = null;
let pc = null;
let room = boot.room;
let stopped = false;

$("title").textContent = `Camera “${boot.name || "Phone"}” · ${boot.title || "Live demo"}`;

async function publish() {
  if (pc) pc.close();
  pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
  const [track] = media.getVideoTracks();
  const tx = pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
  try {
    const params = tx.sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await tx.sender.setParameters(params);
  } catch (error) {
    // Older browsers lack degradationPreference; the default is fine there.
  }
  pc.addEventListener("connectionstatechange", () => {
    if (stopped) return;
    const state = pc.connectionState;
    showState(stateEl, state === "connected" ? "live" : state,
      state === "connected" ? "Live: the presenter can put this camera on air."
        : PEER_WORDS[state]);
  });
  const settings = track.getSettings();
  const sdp = await makeOffer(pc);
  const answer = await signal.request("room_offer", {
    room, purpose: "camera", sdp, name: boot.name || "",
    width: settings.width || 0, height: settings.height || 0,
  });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

function finish(words) {
  stopped = true;
  signal.stop();
  if (pc) pc.close();
  if (media) for (const track of media.getTracks()) track.stop();
  $("stop").hidden = true;
  showState(stateEl, "ended", words);
}

const signal = new Signal({
  onOpen: async () => {
    try {
      const welcome = await signal.request("enter", { token: boot.token });
      room = welcome.room;
      clearError(errorEl);
      await publish();
    } catch (error) {
      showError(errorEl, error);
      if (error.code === "ended" || error.code === "expired") finish(error.reason);
    }
  },
  onMessage: (message) => {
    if (message.type === "ended") {
      finish(`The demo has ended: ${message.reason}.`);
    } else if (message.type === "error") {
      showError(errorEl, message);
    }
  },
  onClose: () => {
    if (!stopped) showState(stateEl, "reconnecting", "Connection lost, reconnecting…");
  },
});

async function start() {
  clearError(errorEl);
  $("start").disabled = true;
  showState(stateEl, "camera", "Starting the camera…");
  try {
    media = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 },
        height: { ideal: 720 } },
      audio: false,
    });
  } catch (error) {
    showError(errorEl, error);
    showState(stateEl, "idle", "The camera is not on yet.");
    $("start").textContent = "Try again";
    $("start").disabled = false;
    return;
  }
  $("start").hidden = true;
  $("intro").hidden = true;
  $("stage").hidden = false;
  $("preview").srcObject = media;
  $("stop").hidden = false;
  showState(stateEl, "connecting", "Connecting…");
  signal.connect();
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", () => finish("Camera stopped."));
window.addEventListener("unhandledrejection", (event) => showError(errorEl, event.reason));
