// The presenter's studio: open a room, add cameras (this computer's devices and
// phones), watch every camera in the multiview, direct the program, zoom, slate,
// record, answer questions.
import {
  $, PEER_WORDS, Signal, clearError, countFrames, makeOffer, readBoot, showError,
  showState,
} from "/static/tapline.js";
import { chatLine, questionItem, send } from "/static/room.js";

const boot = readBoot();
const stateEl = $("state");
const errorEl = $("error");
let room = boot.room || "";
let title = "";
let summary = null;
let monitor = null;
let mic = null; // { track, pc }
const studioCameras = new Map(); // camera id -> { stream, name, pc }
let cameraCount = 0;
let ended = false;

$("who").textContent = boot.name ? `Signed in as ${boot.name}` : "";
countFrames($("program"));
countFrames($("multiview"));

function report(error) {
  showError(errorEl, error);
}

async function request(type, fields = {}) {
  try {
    return await signal.request(type, { room, ...fields });
  } catch (error) {
    report(error);
    return null;
  }
}

// One peer connection per purpose, like the server expects.
async function offer(pc, purpose, fields = {}) {
  const sdp = await makeOffer(pc);
  const answer = await signal.request("room_offer", { room, purpose, sdp, ...fields });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
}

async function startMonitor() {
  if (monitor) monitor.close();
  const pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
  monitor = pc;
  const programTx = pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", ({ track, transceiver }) => {
    const video = transceiver === programTx ? $("program") : $("multiview");
    video.srcObject = new MediaStream([track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    const state = pc.connectionState;
    showState(stateEl, state === "connected" ? "live" : state,
      state === "connected" ? "Studio connected." : PEER_WORDS[state]);
  });
  await offer(pc, "monitor");
}

async function publishCamera(id) {
  const entry = studioCameras.get(id);
  if (entry.pc) entry.pc.close();
  entry.pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
  const [track] = entry.stream.getVideoTracks();
  entry.pc.addTransceiver(track, { direction: "sendonly", streams: [entry.stream] });
  const settings = track.getSettings();
  await offer(entry.pc, "camera", {
    camera: id, name: entry.name, width: settings.width || 0,
    height: settings.height || 0,
  });
}

async function publishMic() {
  if (mic.pc) mic.pc.close();
  mic.pc = new RTCPeerConnection({ iceServers: boot.iceServers || [] });
  mic.pc.addTransceiver(mic.track, { direction: "sendonly" });
  await offer(mic.pc, "mic");
}

async function listDevices() {
  const select = $("device");
  const chosen = select.value;
  const devices = (await navigator.mediaDevices.enumerateDevices())
    .filter((d) => d.kind === "videoinput");
  select.replaceChildren(...devices.map((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `Camera ${index + 1}`;
    return option;
  }));
  if (chosen) select.value = chosen;
}

async function addCamera() {
  const deviceId = $("device").value;
  const video = deviceId ? { deviceId: { exact: deviceId } } : true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    cameraCount += 1;
    const id = `c${cameraCount}-${Math.random().toString(36).slice(2, 7)}`;
    const name = $("camera-name").value.trim() || `Camera ${cameraCount}`;
    studioCameras.set(id, { stream, name, pc: null });
    $("camera-name").value = "";
    await publishCamera(id);
    await listDevices();
    clearError(errorEl);
  } catch (error) {
    report(error);
  }
}

// What is on air, and how a number key or a camera button changes it.
function cameraByNumber(number) {
  return summary && summary.cameras.find((c) => c.number === number);
}

function putOnAir(cameraId, asSecond = false) {
  const layout = $("layout").value;
  const program = summary ? summary.program : {};
  if (layout === "single") {
    request("program", { layout, main: cameraId });
    return;
  }
  let main = asSecond ? program.main : cameraId;
  let second = asSecond ? cameraId : program.second;
  if (!second || second === main) {
    const other = summary.cameras.find((c) => c.id !== main && c.live)
      || summary.cameras.find((c) => c.id !== main);
    second = other ? other.id : "";
  }
  if (!main || !second) {
    // Two cameras are needed for this layout: fall back to one.
    request("program", { layout: "single", main: main || cameraId });
    return;
  }
  request("program", { layout, main, second });
}

function renderCameras() {
  const program = summary.program;
  const onAir = new Set(program.layout === "slate" ? [] : [program.main, program.second]);
  $("cameras").replaceChildren(...summary.cameras.map((camera) => {
    const box = document.createElement("span");
    box.className = "camera";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "put";
    button.dataset.camera = camera.id;
    button.dataset.live = String(camera.live);
    button.dataset.onAir = String(onAir.has(camera.id));
    button.textContent = `${camera.number} ${camera.name}${camera.live ? "" : " (no signal)"}`;
    button.addEventListener("click", () => putOnAir(camera.id));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.title = `Remove ${camera.name}`;
    remove.textContent = "×";
    remove.addEventListener("click", () => removeCamera(camera.id));
    box.append(button, remove);
    return box;
  }));
}

async function removeCamera(cameraId) {
  await request("camera_remove", { camera: cameraId });
  const own = studioCameras.get(cameraId.replace(/^s-/, ""));
  if (own) {
    if (own.pc) own.pc.close();
    for (const track of own.stream.getTracks()) track.stop();
    studioCameras.delete(cameraId.replace(/^s-/, ""));
  }
}

function onRoom(message) {
  summary = message;
  $("title").textContent = `Studio · ${message.title}`;
  $("viewers").textContent = String(message.viewers);
  $("viewers").dataset.count = String(message.viewers);
  const badge = $("on-air");
  badge.dataset.onAir = String(message.on_air);
  badge.textContent = message.program.layout === "slate"
    ? `Slate: ${message.program.slate}` : (message.on_air ? "● On air" : "No signal");
  if (message.program.layout !== "slate") $("layout").value = message.program.layout;
  const record = $("record");
  record.setAttribute("aria-pressed", String(message.recording));
  record.textContent = message.recording ? "Stop recording" : "Start recording";
  $("record-state").textContent = message.recording_error
    ? `Recording failed: ${message.recording_error}`
    : (message.recording ? "● Recording" : (message.last_recording
      ? `Saved as ${message.last_recording}` : ""));
  renderCameras();
}

function onQuestions(message) {
  const act = (question, action) => request("moderate", { question, action });
  $("questions").replaceChildren(...message.questions.map((q) => questionItem(q, act)));
}

function onWelcome(welcome) {
  room = welcome.room;
  history.replaceState(null, "", `/studio?room=${encodeURIComponent(room)}`);
  $("create-form").hidden = true;
  $("studio").hidden = false;
  $("viewer-url").value = welcome.viewer_url;
  // The QR code is an SVG our own server drew.
  $("viewer-qr").innerHTML = welcome.viewer_qr;
  $("chat").replaceChildren();
}

function finish(reason) {
  ended = true;
  signal.stop();
  for (const pc of [monitor, mic && mic.pc, ...[...studioCameras.values()].map((c) => c.pc)]) {
    if (pc) pc.close();
  }
  for (const { stream } of studioCameras.values()) {
    for (const track of stream.getTracks()) track.stop();
  }
  if (mic) mic.track.stop();
  $("studio").hidden = true;
  showState(stateEl, "ended", `The demo has ended: ${reason}.`);
}

const signal = new Signal({
  onOpen: async () => {
    try {
      const welcome = await signal.request("studio", { room, title });
      onWelcome(welcome);
      clearError(errorEl);
      await startMonitor();
      for (const id of studioCameras.keys()) await publishCamera(id);
      if (mic) await publishMic();
    } catch (error) {
      report(error);
      if (error.code === "ended" || error.code === "not_found") {
        room = "";
        finish(error.reason);
      }
    }
  },
  onMessage: (message) => {
    if (message.type === "room") onRoom(message);
    else if (message.type === "chat_line") $("chat").append(chatLine(message));
    else if (message.type === "questions") onQuestions(message);
    else if (message.type === "ended") finish(message.reason);
    else if (message.type === "error") report(message);
  },
  onClose: () => {
    if (!ended) showState(stateEl, "reconnecting", "Connection lost, reconnecting…");
  },
});

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
  const match = /^Digit([1-9])$/.exec(event.code);
  if (typing || !match || !summary || event.ctrlKey || event.metaKey || event.altKey) {
    return;
  }
  const camera = cameraByNumber(Number(match[1]));
  if (!camera) return;
  event.preventDefault();
  putOnAir(camera.id, event.shiftKey);
});

let zoomBusy = false;
async function sendZoom() {
  if (!summary || summary.program.layout === "slate" || zoomBusy) return;
  zoomBusy = true;
  await request("zoom", {
    camera: summary.program.main,
    factor: Number($("zoom").value),
    x: Number($("zoom-x").value),
    y: Number($("zoom-y").value),
  });
  zoomBusy = false;
}
for (const id of ["zoom", "zoom-x", "zoom-y"]) {
  $(id).addEventListener("input", sendZoom);
  $(id).addEventListener("change", sendZoom);
}

$("layout").addEventListener("change", () => {
  if (summary && summary.program.main) putOnAir(summary.program.main);
});
for (const button of document.querySelectorAll("button.slate")) {
  button.addEventListener("click", () => request("program", {
    layout: "slate", slate: button.dataset.slate,
  }));
}
$("slate-custom").addEventListener("click", () => request("program", {
  layout: "slate", slate: $("slate-text").value,
}));
$("record").addEventListener("click", () => request("record", {
  on: !(summary && summary.recording),
}));
$("mic").addEventListener("click", async () => {
  if (mic) return;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    mic = { track: stream.getAudioTracks()[0], pc: null };
    await publishMic();
    $("mic").setAttribute("aria-pressed", "true");
    $("mic").textContent = "Microphone on";
    $("mic").disabled = true;
  } catch (error) {
    mic = null;
    report(error);
  }
});
$("add-camera").addEventListener("click", addCamera);
$("camera-link").addEventListener("click", async () => {
  const invite = await request("camera_link", { name: $("phone-name").value || "Phone" });
  if (!invite) return;
  $("camera-box").hidden = false;
  $("camera-url").value = invite.url;
  $("camera-qr").innerHTML = invite.qr_svg;
});
$("copy").addEventListener("click", () => {
  navigator.clipboard.writeText($("viewer-url").value).catch(report);
});
$("end").addEventListener("click", () => request("room_end", {}));
$("chat-form").addEventListener("submit", (event) => send(event, signal, errorEl, "chat", {
  room, text: $("chat-text").value,
}, $("chat-text")));
$("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  title = $("create-title").value;
  $("create").disabled = true;
  signal.connect();
});
window.addEventListener("unhandledrejection", (event) => report(event.reason));

listDevices().catch(report);
if (room) {
  signal.connect();
} else {
  $("create-form").hidden = false;
  showState(stateEl, "idle", "Give the demo a title to open its room.");
}
