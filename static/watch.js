// A viewer's page: the program with the presenter's voice, chat and questions.
// No camera or microphone is asked for. Video starts muted (browsers only
// autoplay silent media); one tap turns the sound on.
import {
  $, PEER_WORDS, Signal, clearError, countFrames, makeOffer, readBoot, showError,
  showState,
} from "/static/tapline.js";
import { chatLine, questionItem, send } from "/static/room.js";

const boot = readBoot();
const stateEl = $("state");
const errorEl = $("error");
const video = $("program");
let pc = null;
let room = boot.room;
let ended = false;

$("title").textContent = boot.title || "Live demo";
document.title = `${boot.title || "Live demo"} · Tapline`;
countFrames(video);

async function watch() {
  if (pc) pc.close();
  pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  video.srcObject = stream;
  pc.addEventListener("track", ({ track }) => {
    stream.addTrack(track);
    video.play().catch(() => {});
  });
  pc.addEventListener("connectionstatechange", () => {
    if (ended) return;
    const state = pc.connectionState;
    showState(stateEl, state, state === "connected" ? "Live" : PEER_WORDS[state]);
  });
  const sdp = await makeOffer(pc);
  const answer = await signal.request("room_offer", { room, purpose: "watch", sdp });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

function onRoom(summary) {
  const viewers = $("viewers");
  viewers.dataset.count = String(summary.viewers);
  viewers.textContent = `${summary.viewers} watching`;
  const onAir = $("on-air");
  onAir.dataset.onAir = String(summary.on_air);
  onAir.textContent = summary.on_air ? "● Live" : "Stand by";
  const pinned = $("pinned");
  pinned.hidden = !summary.pinned;
  pinned.textContent = summary.pinned
    ? `📌 ${summary.pinned.name}: ${summary.pinned.text}` : "";
}

function onQuestions(message) {
  const list = $("my-questions");
  list.replaceChildren(...message.questions.map((q) => questionItem(q)));
}

function finish(reason) {
  ended = true;
  signal.stop();
  if (pc) pc.close();
  for (const form of document.querySelectorAll("form")) {
    for (const el of form.elements) el.disabled = true;
  }
  $("expert").disabled = true;
  showState(stateEl, "ended", `The demo has ended: ${reason}.`);
}

const signal = new Signal({
  onOpen: async () => {
    try {
      const welcome = await signal.request("enter", { token: boot.token });
      room = welcome.room;
      clearError(errorEl);
      $("chat").replaceChildren();
      await watch();
    } catch (error) {
      showError(errorEl, error);
      if (error.code === "ended" || error.code === "expired") finish(error.reason);
    }
  },
  onMessage: (message) => {
    if (message.type === "room") onRoom(message);
    else if (message.type === "chat_line") $("chat").append(chatLine(message));
    else if (message.type === "questions") onQuestions(message);
    else if (message.type === "ended") finish(message.reason);
    else if (message.type === "error") showError(errorEl, message);
  },
  onClose: () => {
    if (!ended) showState(stateEl, "reconnecting", "Connection lost, reconnecting…");
  },
});

$("unmute").addEventListener("click", () => {
  video.muted = false;
  video.play().catch((error) => showError(errorEl, error));
  $("unmute").hidden = true;
});

$("chat-form").addEventListener("submit", (event) => send(event, signal, errorEl, "chat", {
  room, text: $("chat-text").value, name: $("chat-name").value,
}, $("chat-text")));

$("ask-form").addEventListener("submit", (event) => send(event, signal, errorEl, "ask", {
  room, text: $("ask-text").value, name: $("chat-name").value,
}, $("ask-text")));

$("expert").addEventListener("click", async () => {
  try {
    const reply = await signal.request("expert", { room });
    const link = $("expert-link");
    link.href = reply.url;
    link.hidden = false;
    link.textContent = "Open it in its own tab";
    // The queue opens here, under the demo, which goes on playing small.
    $("expert-frame").src = reply.url;
    $("expert-panel").hidden = false;
    $("program-stage").classList.add("small");
    $("expert").disabled = true;
  } catch (error) {
    showError(errorEl, error);
  }
});

window.addEventListener("unhandledrejection", (event) => showError(errorEl, event.reason));
signal.connect();
