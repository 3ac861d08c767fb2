// Tapline's one browser module: boot data, the signalling socket, the peer
// helpers and the one place errors become words on the page.
//
// Roles: the browser always offers and the server always answers, so the two
// never make offers at the same time (no glare to resolve).

export const PROTOCOL_VERSION = 1;

export function readBoot() {
  const el = document.getElementById("boot");
  return el ? JSON.parse(el.textContent) : {};
}

export function $(id) {
  return document.getElementById(id);
}

// Write a state into the page: words for people, data-state for tests and CSS.
export function showState(el, state, words) {
  el.dataset.state = state;
  el.textContent = words;
}

const ERROR_WORDS = {
  NotAllowedError:
    "Camera or microphone access was refused. Allow it in your browser's " +
    "site settings, then try again.",
  NotFoundError: "No camera was found on this device.",
  NotReadableError:
    "The camera is busy in another app. Close that app, then try again.",
  OverconstrainedError: "The camera cannot provide a picture here.",
  SecurityError:
    "The camera can only be used over a secure (https) connection.",
};

// Every error reaches this one handler, which shows it in words.
export function showError(el, error) {
  let words;
  if (error && ERROR_WORDS[error.name]) {
    words = ERROR_WORDS[error.name];
  } else if (error && error.reason) {
    words = error.reason;
  } else if (error && error.message) {
    words = error.message;
  } else {
    words = String(error);
  }
  el.hidden = false;
  el.textContent = words;
  el.dataset.code = (error && (error.code || error.name)) || "error";
}

export function clearError(el) {
  el.hidden = true;
  el.textContent = "";
  delete el.dataset.code;
}

// The signalling socket: typed JSON messages, replies matched by `ref`,
// reconnection with backoff. `onOpen` runs after every (re)connect.
export class Signal {
  constructor({ onMessage, onOpen, onClose }) {
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onClose = onClose;
    this.pending = new Map();
    this.counter = 0;
    this.stopped = false;
    this.backoffMs = 500;
    this.ws = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.backoffMs = 500;
      this.onOpen();
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => {
      for (const { reject } of this.pending.values()) {
        reject(new Error("The connection to the server was lost."));
      }
      this.pending.clear();
      if (this.stopped) return;
      this.onClose(event);
      setTimeout(() => this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 8000);
    });
  }

  receive(text) {
    const message = JSON.parse(text);
    const waiter = message.ref ? this.pending.get(message.ref) : undefined;
    if (waiter) {
      this.pending.delete(message.ref);
      if (message.type === "error") waiter.reject(message);
      else waiter.resolve(message);
      return;
    }
    this.onMessage(message);
  }

  send(type, fields = {}) {
    this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
  }

  // Send and wait for the reply (or the error) carrying the same ref.
  request(type, fields = {}) {
    const ref = `r${++this.counter}`;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      this.send(type, { ...fields, ref });
    });
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000, "done");
  }
}

// Offer with every candidate inside (the server does not trickle).
export async function makeOffer(pc, gatherTimeoutMs = 3000) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, gatherTimeoutMs);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }
  return pc.localDescription.sdp;
}

// Count decoded frames of a video element, for the page and for tests.
export function countFrames(video) {
  video.dataset.frames = "0";
  const step = () => {
    video.dataset.frames = String(Number(video.dataset.frames) + 1);
    video.requestVideoFrameCallback(step);
  };
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(step);
}

export const PEER_WORDS = {
  new: "Getting ready…",
  connecting: "Connecting…",
  connected: "Connected",
  disconnected: "Connection interrupted, trying again…",
  failed: "The connection failed.",
  closed: "Disconnected.",
};
