// latentpaint page: open an image, paint a mask, inpaint on the server, repeat.
//
// The mask canvas has the image's natural size (CSS scales it for display). Strokes are kept as data
// (points, width, eraser) rather than bitmaps, so undo/redo costs no memory at 40 megapixels: undo pops
// an action and repaints the rest.
"use strict";

const MASK_COLOR = "#ff2d6f"; // drawn opaque; the canvas element itself is translucent (style.css)
const MAX_UPSCALE = 4; // small images are shown larger, up to this factor, so they can be painted

const $ = (id) => document.getElementById(id);
const els = {
  file: $("file"), brush: $("brush-size"), brushValue: $("brush-size-value"), eraser: $("eraser"),
  undo: $("undo"), redo: $("redo"), clear: $("clear"), inpaint: $("inpaint"), download: $("download"),
  damageToggle: $("damage-toggle"), status: $("status"), drop: $("drop"), wrap: $("canvas-wrap"),
  result: $("result"), canvas: $("canvas"), cursor: $("brush-cursor"), stage: $("stage"),
  damagePanel: $("damage-panel"), damage: $("damage"), damageEmpty: $("damage-empty"),
  damageCaption: $("damage-caption"), modelInfo: $("model-info"), method: $("method"),
};
const ctx = els.canvas.getContext("2d");

const state = {
  limits: null, // from /api/health
  image: null, // {blob, url, width, height, name}
  version: 0, // number of results shown; #result[data-version] lets tests wait for one
  actions: [], // {type: "stroke", erase, width, points: [[x, y], ...]} or {type: "clear"}
  undone: [],
  stroke: null, // the stroke being drawn
  erase: false,
  busy: false,
  damageRequest: 0, // only the newest damage response is shown
  damageTimer: null,
};

// ---------------------------------------------------------------- status line

function setStatus(text, kind = "info") {
  els.status.textContent = text;
  els.status.className = kind;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    return JSON.stringify(body.detail ?? body);
  } catch {
    return `${response.status} ${response.statusText}`.trim();
  }
}

// ---------------------------------------------------------------- server calls

async function loadHealth() {
  try {
    const response = await fetch("/api/health");
    if (!response.ok) throw new Error(await errorText(response));
    const health = await response.json();
    state.limits = health.limits;
    const { config, parameters, device } = health.model;
    const parts = [config.arch, config.mask_mode && `${config.mask_mode} mask`, config.delta && "delta"];
    parts.push(`${(parameters / 1e6).toFixed(2)} M parameters`, device);
    els.modelInfo.textContent = parts.filter(Boolean).join(" · ");
    showMethods(health.methods || []);
  } catch (error) {
    setStatus(`Cannot reach the server: ${error.message}`, "error");
  }
}

function showMethods(methods) {
  // the server's list: the model first, then the classical fills; one this server cannot run is shown
  // disabled, its reason (the package to install) as the tooltip
  els.method.replaceChildren(
    ...methods.map(({ name, title, unavailable }) => {
      const option = new Option(name === "model" ? title : `${title} (classical)`, name);
      option.disabled = Boolean(unavailable);
      if (unavailable) option.title = unavailable;
      return option;
    }),
  );
}

async function postPair(path, mask) {
  const form = new FormData();
  form.append("image", state.image.blob, state.image.name);
  form.append("mask", mask, "mask.png");
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form });
  } catch (error) {
    throw new Error(`cannot reach the server (${error.message})`);
  }
  if (!response.ok) throw new Error(await errorText(response));
  return response.blob();
}

// ---------------------------------------------------------------- image and layout

function fitToScreen() {
  if (!state.image) return;
  const { width, height } = state.image;
  const availableWidth = Math.max(els.stage.clientWidth - 2, 100);
  const top = els.stage.getBoundingClientRect().top + window.scrollY;
  const availableHeight = Math.max(window.innerHeight - top - 24, 200);
  const scale = Math.min(availableWidth / width, availableHeight / height, MAX_UPSCALE);
  els.wrap.style.width = `${Math.max(1, Math.round(width * scale))}px`;
  els.wrap.style.height = `${Math.max(1, Math.round(height * scale))}px`;
  els.damage.style.width = els.wrap.style.width; // same display size, side by side (max-width: 100%)
}

async function decodeBlob(blob) {
  const url = URL.createObjectURL(blob);
  const probe = new Image();
  probe.src = url;
  try {
    await probe.decode();
  } catch {
    URL.revokeObjectURL(url);
    return null;
  }
  return { url, width: probe.naturalWidth, height: probe.naturalHeight };
}

async function showImage(blob, name) {
  const decoded = await decodeBlob(blob);
  if (!decoded) return false;
  if (state.image) URL.revokeObjectURL(state.image.url);
  state.image = { blob, name, ...decoded };
  els.result.src = decoded.url;
  await els.result.decode().catch(() => {});
  els.canvas.width = decoded.width;
  els.canvas.height = decoded.height;
  state.actions = [];
  state.undone = [];
  els.drop.hidden = true;
  els.wrap.hidden = false;
  fitToScreen();
  redraw();
  return true;
}

async function openFile(file) {
  if (!file || state.busy) return;
  const limits = state.limits;
  if (limits && file.size > limits.max_upload_bytes) {
    const mb = (limits.max_upload_bytes / 2 ** 20).toFixed(1);
    setStatus(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the server accepts at most ${mb} MB.`, "error");
    return;
  }
  if (!(await showImage(file, file.name))) {
    setStatus(`${file.name} cannot be displayed as an image.`, "error");
    return;
  }
  if (limits && state.image.width * state.image.height > limits.max_pixels) {
    const mp = (state.image.width * state.image.height) / 1e6;
    setStatus(
      `${file.name} has ${mp.toFixed(1)} megapixels; the server accepts at most ${limits.max_pixels / 1e6} ` +
        "megapixels, so it cannot be inpainted.",
      "error",
    );
  } else {
    setStatus(`${file.name}: ${state.image.width}×${state.image.height}. Paint over what to remove, then press Inpaint.`);
  }
  setDownload(null);
  state.version = 0;
  els.result.dataset.version = "0";
  showDamage(null, "");
  updateButtons();
}

function setDownload(name) {
  // the download is always the image on screen, and only once it is a result
  if (name) {
    els.download.href = state.image.url;
    els.download.download = name;
  } else {
    els.download.removeAttribute("href");
  }
  els.download.setAttribute("aria-disabled", String(!name));
}

// ---------------------------------------------------------------- mask painting

function maskIsEmpty() {
  // only strokes after the last "clear" count; an eraser stroke does not make the mask empty for sure,
  // but an empty mask is harmless (the server returns the image unchanged)
  for (let i = state.actions.length - 1; i >= 0; i--) {
    const action = state.actions[i];
    if (action.type === "clear") return true;
    if (!action.erase) return false;
  }
  return true;
}

function paint(stroke, from) {
  ctx.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = MASK_COLOR;
  ctx.lineWidth = stroke.width;
  ctx.lineCap = ctx.lineJoin = "round";
  const points = stroke.points;
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0][0], points[0][1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(...points[Math.max(from - 1, 0)]);
  for (let i = Math.max(from, 1); i < points.length; i++) ctx.lineTo(...points[i]);
  ctx.stroke();
}

function redraw() {
  ctx.globalCompositeOperation = "source-over";
  ctx.clearRect(0, 0, els.canvas.width, els.canvas.height);
  for (const action of state.actions) {
    if (action.type === "clear") ctx.clearRect(0, 0, els.canvas.width, els.canvas.height);
    else paint(action, 0);
  }
}

function record(action) {
  state.actions.push(action);
  state.undone = [];
  afterMaskChange();
}

function undo() {
  if (!state.actions.length || state.busy) return;
  state.undone.push(state.actions.pop());
  redraw();
  afterMaskChange();
}

function redo() {
  if (!state.undone.length || state.busy) return;
  state.actions.push(state.undone.pop());
  redraw();
  afterMaskChange();
}

function clearMask() {
  if (maskIsEmpty() || state.busy) return;
  ctx.clearRect(0, 0, els.canvas.width, els.canvas.height);
  record({ type: "clear" });
}

function afterMaskChange() {
  updateButtons();
  scheduleDamage();
}

function canvasPoint(event) {
  const rect = els.canvas.getBoundingClientRect();
  return [
    ((event.clientX - rect.left) * els.canvas.width) / rect.width,
    ((event.clientY - rect.top) * els.canvas.height) / rect.height,
  ];
}

function moveCursor(event) {
  const rect = els.wrap.getBoundingClientRect();
  const size = Number(els.brush.value);
  els.cursor.style.width = els.cursor.style.height = `${size}px`;
  els.cursor.style.left = `${event.clientX - rect.left - size / 2}px`;
  els.cursor.style.top = `${event.clientY - rect.top - size / 2}px`;
  els.cursor.classList.toggle("erase", state.erase);
  els.cursor.hidden = false;
}

els.canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || !state.image || state.busy) return;
  event.preventDefault();
  els.canvas.setPointerCapture(event.pointerId);
  const rect = els.canvas.getBoundingClientRect();
  // the slider is in screen pixels: convert to image pixels at the current display scale
  const width = (Number(els.brush.value) * els.canvas.width) / rect.width;
  state.stroke = { type: "stroke", erase: state.erase, width, points: [canvasPoint(event)] };
  paint(state.stroke, 0);
});

els.canvas.addEventListener("pointermove", (event) => {
  moveCursor(event);
  if (!state.stroke) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  const from = state.stroke.points.length;
  for (const e of events.length ? events : [event]) state.stroke.points.push(canvasPoint(e));
  paint(state.stroke, from);
});

function endStroke() {
  if (!state.stroke) return;
  const stroke = state.stroke;
  state.stroke = null;
  record(stroke);
}

els.canvas.addEventListener("pointerup", endStroke);
els.canvas.addEventListener("pointercancel", endStroke);
els.canvas.addEventListener("pointerleave", () => {
  els.cursor.hidden = true;
});

function maskBlob() {
  // white where anything is painted (any alpha > 0), black elsewhere, at the image's size
  const out = document.createElement("canvas");
  out.width = els.canvas.width;
  out.height = els.canvas.height;
  const c = out.getContext("2d");
  c.drawImage(els.canvas, 0, 0);
  c.globalCompositeOperation = "source-in";
  c.fillStyle = "#fff";
  c.fillRect(0, 0, out.width, out.height);
  c.globalCompositeOperation = "destination-over";
  c.fillStyle = "#000";
  c.fillRect(0, 0, out.width, out.height);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

// ---------------------------------------------------------------- inpainting

async function inpaint() {
  if (!state.image || state.busy) return;
  if (maskIsEmpty()) {
    setStatus("Paint over the area to fill first.", "error");
    return;
  }
  setBusy(true);
  setStatus("Inpainting…", "busy");
  const started = performance.now();
  const before = state.image;
  try {
    const mask = await maskBlob();
    const method = els.method.value;
    const result = await postPair(`/api/inpaint?method=${encodeURIComponent(method)}`, mask);
    const stem = before.name.replace(/\.[^.]*$/, "").replace(/-inpainted$/, "") || "image";
    const name = `${stem}-inpainted.png`;
    if (!(await showImage(result, name))) throw new Error("the server's answer is not a readable image");
    setDownload(name);
    state.version += 1;
    els.result.dataset.version = String(state.version);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const how = method === "model" ? "" : ` with ${els.method.selectedOptions[0].textContent}`;
    setStatus(`Inpainted${how} in ${seconds} s. Paint again to refine, or download the result.`, "ok");
    if (els.damageToggle.checked) requestDamage(before, mask, "Latent damage of the mask just filled");
  } catch (error) {
    setStatus(`Inpainting failed: ${error.message}`, "error");
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  updateButtons();
}

function updateButtons() {
  const ready = Boolean(state.image) && !state.busy;
  els.undo.disabled = !ready || !state.actions.length;
  els.redo.disabled = !ready || !state.undone.length;
  els.clear.disabled = !ready || maskIsEmpty();
  els.inpaint.disabled = !ready;
  els.method.disabled = state.busy;
}

// ---------------------------------------------------------------- latent damage

function showDamage(blob, caption) {
  if (els.damage.src) URL.revokeObjectURL(els.damage.src);
  els.damage.removeAttribute("src");
  els.damage.hidden = !blob;
  els.damageEmpty.hidden = Boolean(blob);
  if (blob) els.damage.src = URL.createObjectURL(blob);
  if (caption) els.damageCaption.textContent = caption;
}

async function requestDamage(image, mask, caption) {
  const id = ++state.damageRequest;
  els.damagePanel.classList.add("loading");
  try {
    const form = new FormData();
    form.append("image", image.blob, image.name);
    form.append("mask", mask, "mask.png");
    const response = await fetch("/api/latent-damage", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    const blob = await response.blob();
    if (id === state.damageRequest) showDamage(blob, caption);
  } catch (error) {
    if (id === state.damageRequest) setStatus(`Latent damage failed: ${error.message}`, "error");
  } finally {
    if (id === state.damageRequest) els.damagePanel.classList.remove("loading");
  }
}

function scheduleDamage() {
  clearTimeout(state.damageTimer);
  if (!els.damageToggle.checked || !state.image) return;
  if (maskIsEmpty()) {
    state.damageRequest += 1; // drop answers still on their way
    showDamage(null, "Latent damage");
    return;
  }
  state.damageTimer = setTimeout(async () => {
    requestDamage(state.image, await maskBlob(), "Latent damage of the current mask");
  }, 250);
}

els.damageToggle.addEventListener("change", () => {
  els.damagePanel.hidden = !els.damageToggle.checked;
  document.body.classList.toggle("with-damage", els.damageToggle.checked);
  fitToScreen();
  scheduleDamage();
});

// ---------------------------------------------------------------- controls

function setEraser(on) {
  state.erase = on;
  els.eraser.setAttribute("aria-pressed", String(on));
  els.eraser.classList.toggle("active", on);
}

function setBrush(size) {
  const clamped = Math.min(Number(els.brush.max), Math.max(Number(els.brush.min), size));
  els.brush.value = String(clamped);
  els.brushValue.textContent = String(clamped);
}

els.file.addEventListener("change", () => {
  openFile(els.file.files[0]);
  els.file.value = ""; // choosing the same file again still fires "change"
});
els.brush.addEventListener("input", () => setBrush(Number(els.brush.value)));
els.eraser.addEventListener("click", () => setEraser(!state.erase));
els.undo.addEventListener("click", undo);
els.redo.addEventListener("click", redo);
els.clear.addEventListener("click", clearMask);
els.inpaint.addEventListener("click", inpaint);
els.download.addEventListener("click", (event) => {
  if (!els.download.hasAttribute("href")) event.preventDefault();
});

document.addEventListener("keydown", (event) => {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "z") {
    event.preventDefault();
    if (event.shiftKey) redo();
    else undo();
  } else if (mod && key === "y") {
    event.preventDefault();
    redo();
  } else if (!mod && !event.altKey) {
    if (key === "[") setBrush(Number(els.brush.value) - 5);
    else if (key === "]") setBrush(Number(els.brush.value) + 5);
    else if (key === "e") setEraser(!state.erase);
  }
});

// the whole page is a drop target, so a near miss still opens the image
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) document.body.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) openFile(file);
});

window.addEventListener("resize", fitToScreen);

setBrush(Number(els.brush.value));
updateButtons();
loadHealth();
