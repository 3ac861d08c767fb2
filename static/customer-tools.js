// The customer's side of the technician's tools: apply camera requests to the
// phone's camera and answer them, show the frozen still with the technician's
// strokes and pointer, chat, files sent by the technician, and pausing the camera.
import { $, showError } from "/static/tapline.js";
import { Overlay } from "/static/annotate.js";

const FACING_WORDS = { user: "front", environment: "back" };

export class CustomerTools {
  // `media()` is the camera's MediaStream, `sender()` the RTCRtpSender it feeds.
  constructor({ signal, boot, errorEl, media, sender }) {
    this.signal = signal;
    this.boot = boot;
    this.errorEl = errorEl;
    this.media = media;
    this.sender = sender;
    this.overlay = null;
    this.frozenName = null;
    this.paused = false;
    this.facing = "environment";
  }

  start() {
    this.overlay = new Overlay($("stage"), $("preview"));
    $("tools").hidden = false;
    $("pause").addEventListener("click", () => this.setPaused(!this.paused));
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("chat-text").value;
      this.signal.request("say", { session: this.boot.session, text })
        .then(() => { $("chat-text").value = ""; })
        .catch((error) => showError(this.errorEl, error));
    });
  }

  // Handle one server message; false when it is not a tools message.
  receive(message) {
    const handlers = {
      tools: () => this.onState(message),
      stroke: () => this.overlay && this.overlay.addStroke(message.stroke),
      pointer: () => this.overlay && this.overlay.pointer(message.x, message.y, message.on),
      camera_control: () => this.onCameraControl(message),
      said: () => this.onSaid(message),
      files: () => this.onFiles(message),
    };
    const handler = handlers[message.type];
    if (!handler) return false;
    Promise.resolve(handler()).catch((error) => showError(this.errorEl, error));
    return true;
  }

  async fetchFile(url) {
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${this.boot.token}` },
    });
    if (!response.ok) throw await response.json();
    return URL.createObjectURL(await response.blob());
  }

  async onState(state) {
    if (!this.overlay) return;
    const frozen = state.frozen;
    if (frozen && frozen.name !== this.frozenName) {
      this.frozenName = frozen.name;
      const url = await this.fetchFile(frozen.url);
      if (this.frozenName === frozen.name) this.overlay.showStill(url, frozen.width, frozen.height);
    } else if (!frozen && this.frozenName) {
      this.frozenName = null;
      this.overlay.hideStill();
    }
    this.overlay.setStrokes(state.strokes);
    $("frozen-note").hidden = !frozen;
    // After a reload the server still holds a pause: keep the camera private.
    if (state.paused !== this.paused) this.showPaused(state.paused);
  }

  // Camera requests from the technician: answer every one, with what happened.
  async onCameraControl(request) {
    const answer = { session: this.boot.session, request: request.request,
      action: request.action, ok: false, unsupported: false, reason: "" };
    try {
      if (request.action === "facing") await this.switchCamera(request.facing, answer);
      else if (request.action === "torch") await this.torch(request.on, answer);
      else if (request.action === "zoom") await this.zoom(request.zoom, answer);
      else if (request.action === "photo") await this.photo(answer);
    } catch (error) {
      answer.ok = false;
      answer.reason = String(error.reason || error.message || error).slice(0, 200);
    }
    const track = this.media().getVideoTracks()[0];
    const settings = track ? track.getSettings() : {};
    answer.facing = settings.facingMode || this.facing;
    answer.torch = Boolean(settings.torch);
    answer.zoom = Math.round(settings.zoom || 0);
    await this.signal.request("camera_result", answer);
  }

  async switchCamera(facing, answer) {
    const media = this.media();
    const old = media.getVideoTracks()[0];
    const size = { width: { ideal: 1280 }, height: { ideal: 720 } };
    // Phones often cannot open two cameras at once: let the old one go first.
    old.stop();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { exact: facing }, ...size } });
      answer.ok = true;
    } catch (error) {
      if (error.name !== "OverconstrainedError" && error.name !== "NotFoundError") {
        throw error;
      }
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: { ideal: facing }, ...size } });
      answer.unsupported = true;
      answer.reason = `This phone has no ${FACING_WORDS[facing] || facing} camera.`;
    }
    const track = stream.getVideoTracks()[0];
    media.removeTrack(old);
    media.addTrack(track);
    track.enabled = !this.paused;
    const sender = this.sender();
    if (sender) await sender.replaceTrack(track);
    $("preview").srcObject = media;
    if (answer.ok) this.facing = facing;
  }

  async applyAdvanced(name, value, answer, words) {
    const track = this.media().getVideoTracks()[0];
    const caps = track.getCapabilities ? track.getCapabilities() : {};
    if (!(name in caps)) {
      answer.unsupported = true;
      answer.reason = words;
      return;
    }
    await track.applyConstraints({ advanced: [{ [name]: value }] });
    answer.ok = true;
  }

  torch(on, answer) {
    return this.applyAdvanced("torch", on, answer, "This camera has no light.");
  }

  zoom(percent, answer) {
    const track = this.media().getVideoTracks()[0];
    const range = (track.getCapabilities ? track.getCapabilities() : {}).zoom;
    const value = range ? Math.min(range.max, range.min * percent / 100) : 0;
    return this.applyAdvanced("zoom", value, answer, "This camera cannot zoom.");
  }

  async photo(answer) {
    if (!("ImageCapture" in window)) {
      answer.unsupported = true;
      answer.reason = "This browser cannot take full-resolution photos.";
      return;
    }
    const capture = new window.ImageCapture(this.media().getVideoTracks()[0]);
    const blob = await capture.takePhoto();
    const response = await fetch(`/api/sessions/${this.boot.session}/photo`, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.boot.token}`, "Content-Type": blob.type },
      body: blob,
    });
    if (!response.ok) throw await response.json();
    answer.ok = true;
  }

  showPaused(paused) {
    this.paused = paused;
    const media = this.media();
    if (media) for (const track of media.getVideoTracks()) track.enabled = !paused;
    $("pause").textContent = paused ? "Resume my camera" : "Pause my camera";
    $("pause").setAttribute("aria-pressed", paused ? "true" : "false");
    $("paused-note").hidden = !paused;
  }

  setPaused(paused) {
    this.showPaused(paused);
    this.signal.request("pause", { session: this.boot.session, paused })
      .catch((error) => showError(this.errorEl, error));
  }

  onSaid(line) {
    const item = document.createElement("li");
    item.dataset.role = line.role;
    item.textContent = `${line.role === "customer" ? "You" : "Technician"}: ${line.text}`;
    $("chat-lines").append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  onFiles(message) {
    const pushed = message.files.filter((f) => f.kind === "pushed");
    $("files").hidden = pushed.length === 0;
    $("file-list").replaceChildren(...pushed.map((file) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = file.mime === "application/pdf" ? "Open the PDF" : "Open the picture";
      button.addEventListener("click", async () => {
        try {
          const url = await this.fetchFile(file.url);
          const link = document.createElement("a");
          link.href = url;
          link.download = file.name;
          link.click();
        } catch (error) {
          showError(this.errorEl, error);
        }
      });
      item.append(button);
      return item;
    }));
  }
}
