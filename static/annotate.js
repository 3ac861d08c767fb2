// The annotation overlay shared by the console and the customer's page: a frozen
// still over the live video, the technician's strokes and pointer drawn on a canvas.
// Points are fractions of the picture (0 to 1); the server draws the same shapes
// into the recording (server/media/annotation.py), sized by the picture's width.

export const PALETTE = {
  red: "rgb(240, 30, 60)",
  yellow: "rgb(250, 210, 0)",
  green: "rgb(40, 210, 90)",
  blue: "rgb(30, 120, 250)",
  white: "rgb(255, 255, 255)",
};
const LINE_FRACTION = 1 / 160;

export class Overlay {
  // `stage` holds the video; the still and the canvas are laid over it.
  constructor(stage, video) {
    this.stage = stage;
    this.video = video;
    this.still = document.createElement("img");
    this.still.className = "still";
    this.still.alt = "Frozen picture";
    this.still.hidden = true;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "overlay";
    stage.append(this.still, this.canvas);
    this.strokes = [];
    this.pointerAt = null;
    this.size = null; // the still's size while frozen
    new ResizeObserver(() => this.redraw()).observe(stage);
    video.addEventListener("resize", () => this.redraw());
  }

  get frozen() {
    return !this.still.hidden;
  }

  showStill(url, width, height) {
    this.size = { width, height };
    this.still.src = url;
    this.still.hidden = false;
    this.stage.dataset.frozen = "true";
    this.redraw();
  }

  hideStill() {
    if (this.still.src.startsWith("blob:")) URL.revokeObjectURL(this.still.src);
    this.still.hidden = true;
    this.still.removeAttribute("src");
    this.size = null;
    delete this.stage.dataset.frozen;
    this.redraw();
  }

  setStrokes(strokes) {
    this.strokes = strokes;
    this.redraw();
  }

  addStroke(stroke) {
    this.strokes = [...this.strokes.filter((s) => s.id !== stroke.id), stroke];
    this.redraw();
  }

  pointer(x, y, on) {
    this.pointerAt = on ? { x, y } : null;
    this.redraw();
  }

  // The rectangle the picture fills inside the stage (object-fit: contain).
  box() {
    const width = this.canvas.width;
    const height = this.canvas.height;
    const media = this.size || { width: this.video.videoWidth, height: this.video.videoHeight };
    if (!media.width || !media.height) return { x: 0, y: 0, w: width, h: height };
    const scale = Math.min(width / media.width, height / media.height);
    const w = media.width * scale;
    const h = media.height * scale;
    return { x: (width - w) / 2, y: (height - h) / 2, w, h };
  }

  // Page coordinates -> picture fractions, or null outside the picture.
  toPicture(event) {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = this.canvas.width / rect.width;
    const box = this.box();
    const x = ((event.clientX - rect.left) * ratio - box.x) / box.w;
    const y = ((event.clientY - rect.top) * ratio - box.y) / box.h;
    if (x < 0 || y < 0 || x > 1 || y > 1) return null;
    return { x, y };
  }

  redraw(extra = null) {
    const rect = this.stage.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(rect.width * ratio);
    const height = Math.round(rect.height * ratio);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const box = this.box();
    const strokes = extra ? [...this.strokes, extra] : this.strokes;
    this.stage.dataset.strokes = String(this.frozen ? this.strokes.length : 0);
    if (this.frozen) for (const stroke of strokes) drawStroke(ctx, box, stroke);
    if (this.pointerAt && !this.frozen) drawPointer(ctx, box, this.pointerAt);
  }
}

function drawStroke(ctx, box, stroke) {
  const pts = [];
  for (let i = 0; i + 1 < stroke.points.length; i += 2) {
    pts.push([box.x + stroke.points[i] * box.w, box.y + stroke.points[i + 1] * box.h]);
  }
  if (!pts.length) return;
  const thick = Math.max(2, box.w * LINE_FRACTION);
  ctx.strokeStyle = ctx.fillStyle = PALETTE[stroke.colour] || PALETTE.red;
  ctx.lineWidth = thick;
  ctx.lineCap = ctx.lineJoin = "round";
  const [x0, y0] = pts[0];
  if (stroke.shape === "arrow" && pts.length >= 2) {
    const [x1, y1] = pts[1];
    const angle = Math.atan2(y1 - y0, x1 - x0);
    const head = Math.min(Math.hypot(x1 - x0, y1 - y0) * 0.5, thick * 5);
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    for (const side of [-1, 1]) {
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - head * Math.cos(angle + side * Math.PI / 4),
        y1 - head * Math.sin(angle + side * Math.PI / 4));
    }
    ctx.stroke();
  } else if (stroke.shape === "circle" && pts.length >= 2) {
    ctx.beginPath();
    ctx.arc(x0, y0, Math.hypot(pts[1][0] - x0, pts[1][1] - y0), 0, 2 * Math.PI);
    ctx.stroke();
  } else if (stroke.shape === "freehand") {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  } else if (stroke.shape === "text") {
    ctx.font = `${Math.round(box.w / 28)}px sans-serif`;
    ctx.lineWidth = thick / 2;
    ctx.strokeStyle = "black";
    ctx.strokeText(stroke.text, x0, y0);
    ctx.fillText(stroke.text, x0, y0);
  } else if (stroke.shape === "marker") {
    const radius = Math.max(6, box.w / 50);
    ctx.beginPath();
    ctx.arc(x0, y0, radius, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillStyle = "black";
    ctx.font = `bold ${Math.round(radius * 1.2)}px sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(String(stroke.number || ""), x0, y0);
    ctx.textAlign = "start";
    ctx.textBaseline = "alphabetic";
  }
}

function drawPointer(ctx, box, at) {
  const x = box.x + at.x * box.w;
  const y = box.y + at.y * box.h;
  const radius = Math.max(6, box.w / 40);
  ctx.lineWidth = Math.max(2, box.w * LINE_FRACTION);
  ctx.strokeStyle = PALETTE.yellow;
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.stroke();
}

// The console's drawing: a drag makes one stroke in the chosen tool and colour.
// `text()` is what a text stroke writes; `onStroke({shape, points, colour, text})`
// gets points in 0-10000 units;
// `onPointer(x, y, on)` gets the live pointer while not frozen.
export function drawWith(overlay, { tool, colour, text, onStroke, onPointer }) {
  let current = null;
  const canvas = overlay.canvas;
  const units = (p) => [Math.round(p.x * 10000), Math.round(p.y * 10000)];
  canvas.addEventListener("pointerdown", (event) => {
    const at = overlay.toPicture(event);
    if (!at || !overlay.frozen) return;
    const shape = tool();
    if (shape === "marker" || shape === "text") {
      const words = shape === "text" ? text().trim() : "";
      if (shape === "text" && !words) return;
      onStroke({ shape, points: units(at), colour: colour(), text: words });
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    current = { shape, colour: colour(), from: at, points: [at.x, at.y] };
  });
  canvas.addEventListener("pointermove", (event) => {
    const at = overlay.toPicture(event);
    if (!overlay.frozen) {
      if (at && tool() === "pointer") onPointer(at.x, at.y, true);
      return;
    }
    if (!current || !at) return;
    if (current.shape === "freehand") {
      if (current.points.length < 510) current.points.push(at.x, at.y);
    } else {
      current.points = [current.from.x, current.from.y, at.x, at.y];
    }
    overlay.redraw({ shape: current.shape, colour: current.colour, points: current.points });
  });
  canvas.addEventListener("pointerleave", () => {
    if (!overlay.frozen && tool() === "pointer") onPointer(0, 0, false);
  });
  canvas.addEventListener("pointerup", () => {
    if (!current) return;
    const { shape, points } = current;
    const stroke = { shape, colour: current.colour, text: "",
      points: points.map((v) => Math.round(v * 10000)) };
    current = null;
    overlay.redraw();
    if (points.length >= 4) onStroke(stroke);
  });
}
