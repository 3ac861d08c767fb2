// The technician's tools for one session in the console: steer the customer's
// camera, digital zoom, freeze and draw, pointer, snapshots and photos (gallery),
// chat, and sending an image or PDF.
import { showError, showState } from "/static/tapline.js";
import { Overlay, drawWith } from "/static/annotate.js";

const TOOL_MESSAGES = new Set(["tools", "stroke", "camera_result", "said", "files"]);
const ACTION_WORDS = {
  facing: "Camera switched",
  torch: "Light changed",
  zoom: "Phone zoom changed",
  photo: "Photo taken",
};

export class ConsoleTools {
  constructor({ signal, session, el, errorEl, me }) {
    this.me = me; // this console's name: its own chat lines read "You"
    this.signal = signal;
    this.session = session;
    this.el = el;
    this.errorEl = errorEl;
    this.facing = "environment";
    this.torchOn = false;
    this.frozen = null;
    const q = (selector) => el.querySelector(selector);
    this.q = q;
    this.overlay = new Overlay(q(".stage"), q("video"));
    drawWith(this.overlay, {
      tool: () => q(".tool").value,
      colour: () => q(".colour").value,
      text: () => q(".stroke-text").value,
      onStroke: (stroke) => this.ask("stroke", stroke),
      onPointer: (x, y, on) => this.signal.send("pointer", {
        session, x: Math.round(x * 10000), y: Math.round(y * 10000), on }),
    });
    // Double-click on the live picture: digital zoom centred there.
    this.zoom = null;
    this.overlay.canvas.addEventListener("dblclick", (event) => {
      const at = this.overlay.toPicture(event);
      if (!at || this.overlay.frozen) return;
      const [x, y] = this.toCamera(at);
      const level = Math.max(200, Number(q(".zoom-level").value));
      this.ask("digital_zoom", { factor: level, x: Math.round(x * 100), y: Math.round(y * 100) });
    });
    const click = (selector, handler) => q(selector).addEventListener("click", handler);
    click(".switch-camera", () => this.ask("camera_control", {
      action: "facing", facing: this.facing === "user" ? "environment" : "user" }));
    click(".torch", () => this.ask("camera_control", { action: "torch", on: !this.torchOn }));
    click(".phone-zoom", () => this.ask("camera_control", {
      action: "zoom", zoom: Number(q(".zoom-level").value) }));
    click(".digital-zoom", () => this.ask("digital_zoom", {
      factor: Number(q(".zoom-level").value), x: 50, y: 50 }));
    click(".freeze", () => this.ask(this.frozen ? "unfreeze" : "freeze"));
    click(".undo", () => this.ask("undo"));
    click(".clear", () => this.ask("clear"));
    click(".snapshot", () => this.ask("snapshot"));
    click(".photo", () => this.ask("camera_control", { action: "photo" }));
    q(".chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask("say", { text: q(".chat-text").value })
        .then((ok) => { if (ok) q(".chat-text").value = ""; });
    });
    q(".push-file").addEventListener("change", () => this.push());
  }

  // A point of the (possibly zoomed) picture -> the same point of the whole camera
  // picture, as the server crops it (server/media/stage.py zoom_window).
  toCamera(at) {
    if (!this.zoom) return [at.x, at.y];
    const size = 100 / this.zoom.factor;
    const x0 = Math.min(Math.max(this.zoom.x / 100 - size / 2, 0), 1 - size);
    const y0 = Math.min(Math.max(this.zoom.y / 100 - size / 2, 0), 1 - size);
    return [x0 + at.x * size, y0 + at.y * size];
  }

  async ask(type, fields = {}) {
    try {
      return await this.signal.request(type, { session: this.session, ...fields });
    } catch (error) {
      showError(this.errorEl, error);
      return null;
    }
  }

  receive(message) {
    if (!TOOL_MESSAGES.has(message.type)) return false;
    if (message.type === "tools") this.onState(message);
    else if (message.type === "stroke") this.overlay.addStroke(message.stroke);
    else if (message.type === "camera_result") this.onCameraResult(message);
    else if (message.type === "said") this.onSaid(message);
    else if (message.type === "files") this.onFiles(message);
    return true;
  }

  onState(state) {
    const q = this.q;
    const frozen = state.frozen;
    if (frozen && (!this.frozen || this.frozen.name !== frozen.name)) {
      this.overlay.showStill(frozen.url, frozen.width, frozen.height);
    } else if (!frozen && this.frozen) {
      this.overlay.hideStill();
    }
    this.frozen = frozen;
    this.zoom = state.zoom;
    this.overlay.setStrokes(state.strokes);
    q(".freeze").textContent = frozen ? "Unfreeze" : "Freeze";
    q(".freeze").setAttribute("aria-pressed", frozen ? "true" : "false");
    for (const button of [q(".undo"), q(".clear")]) button.disabled = !frozen;
    const camera = q(".camera-state");
    if (state.paused) showState(camera, "paused", "Camera paused by the customer");
    else showState(camera, "on", state.zoom ? `Digital zoom ${state.zoom.factor}%` : "");
  }

  onCameraResult(result) {
    const words = this.q(".camera-note");
    if (result.ok) {
      if (result.action === "facing") this.facing = result.facing || this.facing;
      if (result.action === "torch") this.torchOn = result.torch;
      showState(words, "ok", ACTION_WORDS[result.action] || "Done");
    } else {
      const offer = result.digital_zoom ? " Use digital zoom instead." : "";
      showState(words, result.unsupported ? "unsupported" : "failed",
        `${result.reason || "The phone could not do that."}${offer}`);
    }
    this.q(".digital-zoom").classList.toggle("suggested", Boolean(result.digital_zoom));
  }

  onSaid(line) {
    const item = document.createElement("li");
    item.dataset.role = line.role;
    const who = line.role === "customer" ? "Customer"
      : line.name === this.me ? "You" : line.name || "Technician";
    item.textContent = `${who}: ${line.text}`;
    this.q(".chat-lines").append(item);
  }

  onFiles(message) {
    this.q(".gallery").replaceChildren(...message.files.map((file) => {
      const item = document.createElement("li");
      item.dataset.kind = file.kind;
      const link = document.createElement("a");
      link.href = `${file.url}?download=1`;
      link.download = file.name;
      if (file.mime.startsWith("image/")) {
        const image = document.createElement("img");
        image.src = file.url;
        image.alt = `${file.kind} ${file.name}`;
        link.append(image);
      } else {
        link.textContent = `${file.kind}: ${file.name}`;
      }
      item.append(link);
      return item;
    }));
  }

  async push() {
    const input = this.q(".push-file");
    const [file] = input.files;
    if (!file) return;
    try {
      const response = await fetch(`/api/sessions/${this.session}/files`, {
        method: "POST",
        headers: { "Content-Type": file.type || "application/octet-stream" },
        body: file,
      });
      if (!response.ok) throw await response.json();
    } catch (error) {
      showError(this.errorEl, error);
    } finally {
      input.value = "";
    }
  }
}
