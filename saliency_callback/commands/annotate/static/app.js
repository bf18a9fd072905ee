// The annotate page: a grid of probes, one editor, every change sent to the server at once.
import { fillBox, isEmpty, overlayPixels, stampSegment, thumbnailPixels, toBase64 } from "./masks.js";
import { Server } from "./server.js";

const MASK_RGB = [255, 61, 139];
const HANDLE_PX = 8;
const THUMB_PX = 128; // thumbnails are drawn at most this many pixels on a side // how near (screen pixels) an edge or corner of the box is grabbed
const $ = (id) => document.getElementById(id);

const server = new Server(new URLSearchParams(location.search).get("token") || "", setStatus);
const S = {
  n: 0, W: 0, H: 0, names: [], classNames: null,
  images: null, masks: [], labels: [], source: [], checked: [], skipped: [], boxes: [],
  fallback: [], current: 0, tool: "box", radius: 6, zoom: null, scale: 1, undo: [],
  thumbs: [], drag: null,
};

// -- loading --------------------------------------------------------------------------------

async function load() {
  const [meta, images, masks] = await Promise.all([
    server.json("/api/meta"), server.bytes("/api/images"), server.bytes("/api/masks"),
  ]);
  Object.assign(S, {
    n: meta.n, W: meta.width, H: meta.height, names: meta.names, classNames: meta.class_names,
    labels: meta.labels || new Array(meta.n).fill(-1), source: meta.source,
    checked: meta.checked, skipped: meta.skipped, fallback: meta.fallback,
    boxes: meta.boxes.map((b) => (b[0] < 0 ? null : b)),
    images: new Uint8ClampedArray(images),
  });
  const size = S.W * S.H;
  const all = new Uint8Array(masks);
  S.masks = Array.from({ length: S.n }, (_, i) => all.slice(i * size, (i + 1) * size));
  $("file").textContent = `${meta.out} · ${S.n} probes · ${S.H}×${S.W}` +
    (meta.proposal_method ? ` · proposals: ${meta.proposal_method}` : "");
  $("file").title = `saved to ${meta.out}; autosaved to ${meta.autosave} at every change`;
  buildLabels();
  buildGrid();
  for (const c of ["image", "overlay"]) { $(c).width = S.W; $(c).height = S.H; }
  setTool("box");
  select(0);
  setStatus("ready");
  document.documentElement.dataset.ready = String(performance.now());
}

function buildLabels() {
  const select = $("label"), number = $("label-number");
  if (S.classNames) {
    select.append(new Option("— unknown", "-1"));
    S.classNames.forEach((name, k) => select.append(new Option(`${k}  ${name}`, String(k))));
    select.addEventListener("change", () => { setLabel(Number(select.value)); select.blur(); });
  } else {
    select.hidden = true;
    number.hidden = false;
    number.addEventListener("change", () => {
      const v = Math.trunc(Number(number.value));
      setLabel(Number.isFinite(v) && v >= 0 ? v : -1);
      number.blur();
    });
  }
}

function buildGrid() {
  const grid = $("grid"), frag = document.createDocumentFragment();
  const small = Math.max(S.W, S.H) < 72;
  const k = Math.min(1, THUMB_PX / Math.max(S.W, S.H));
  const tw = Math.max(1, Math.round(S.W * k)), th = Math.max(1, Math.round(S.H * k));
  for (let i = 0; i < S.n; i++) {
    const cell = document.createElement("div");
    cell.className = "thumb" + (small ? " pixelated" : "");
    cell.title = S.names[i];
    const canvas = document.createElement("canvas");
    canvas.width = tw; canvas.height = th;
    const n = document.createElement("span"); n.className = "n"; n.textContent = i;
    const dot = document.createElement("span"); dot.className = "dot";
    const chk = document.createElement("span"); chk.className = "chk";
    cell.append(canvas, n, dot, chk);
    cell.addEventListener("click", () => select(i));
    frag.append(cell);
    S.thumbs.push({ cell, ctx: canvas.getContext("2d"), data: new ImageData(tw, th), dot, chk });
  }
  grid.append(frag);
  for (let i = 0; i < S.n; i++) drawThumb(i);
  updateProgress();
}

// -- drawing --------------------------------------------------------------------------------

function imageOf(i) {
  const size = S.W * S.H * 4;
  return S.images.subarray(i * size, (i + 1) * size);
}

function drawThumb(i) {
  const t = S.thumbs[i];
  const { width, height } = t.data;
  thumbnailPixels(imageOf(i), S.masks[i], S.W, S.H, width, height, t.data.data, MASK_RGB);
  t.ctx.putImageData(t.data, 0, 0);
  t.cell.classList.toggle("skipped", S.skipped[i]);
  t.cell.classList.toggle("current", i === S.current);
  t.dot.className = `dot ${S.source[i]}`;
  t.dot.title = S.source[i] + (S.fallback[i] ? " (fallback proposal)" : "");
  t.chk.textContent = S.skipped[i] ? "⊘" : S.checked[i] ? "✓" : "";
}

const overlayData = { data: null };
function drawOverlay() {
  const i = S.current;
  if (!overlayData.data || overlayData.data.width !== S.W) overlayData.data = new ImageData(S.W, S.H);
  overlayPixels(S.masks[i], S.W, S.H, overlayData.data.data, MASK_RGB);
  $("overlay").getContext("2d").putImageData(overlayData.data, 0, 0);
  drawBox();
}

function drawBox() {
  const el = $("box"), b = S.boxes[S.current];
  el.hidden = !b;
  if (!b) return;
  const s = S.scale;
  Object.assign(el.style, {
    left: `${b[0] * s}px`, top: `${b[1] * s}px`,
    width: `${(b[2] - b[0]) * s}px`, height: `${(b[3] - b[1]) * s}px`,
  });
}

function fitScale() {
  const vp = $("viewport");
  const fit = Math.min((vp.clientWidth - 32) / S.W, (vp.clientHeight - 32) / S.H);
  return fit >= 1 ? Math.floor(fit) : Math.max(fit, 0.1);
}

function layout() {
  S.scale = S.zoom ?? fitScale();
  const wrap = $("wrap");
  wrap.style.width = `${S.W * S.scale}px`;
  wrap.style.height = `${S.H * S.scale}px`;
  wrap.dataset.scale = String(S.scale);
  $("cursor").style.width = $("cursor").style.height = `${2 * S.radius * S.scale}px`;
  drawBox();
  caption();
}

function caption() {
  const i = S.current;
  const label = S.labels[i] < 0 ? "no label"
    : S.classNames ? `${S.labels[i]} ${S.classNames[S.labels[i]]}` : `class ${S.labels[i]}`;
  const state = S.skipped[i] ? "skipped" : S.checked[i] ? "checked" : "unchecked";
  const zoom = S.scale >= 1 ? `${+S.scale.toFixed(2)}×` : `${Math.round(S.scale * 100)}%`;
  $("caption").innerHTML = "";
  for (const [text, strong] of [
    [`#${i}`, true], [S.names[i], false], [label, false],
    [S.source[i] + (S.fallback[i] ? " (fallback)" : ""), false], [state, false], [zoom, false],
  ]) {
    const el = document.createElement(strong ? "b" : "span");
    el.textContent = text;
    $("caption").append(el);
  }
}

function updateProgress() {
  const done = S.checked.filter(Boolean).length;
  $("progress").textContent = `${done}/${S.n} checked`;
  $("bar-fill").style.width = `${(100 * done) / Math.max(S.n, 1)}%`;
}

function updatePanel() {
  const i = S.current;
  $("label").value = String(S.labels[i]);
  $("label-number").value = S.labels[i] < 0 ? "" : String(S.labels[i]);
  $("skip").classList.toggle("on", S.skipped[i]);
  $("skip").firstChild.textContent = S.skipped[i] ? "Skipped" : "Skip";
}

function select(i) {
  const prev = S.current;
  S.current = (i + S.n) % S.n;
  S.thumbs[prev]?.cell.classList.remove("current");
  S.thumbs[S.current].cell.classList.add("current");
  S.thumbs[S.current].cell.scrollIntoView({ block: "nearest" });
  const data = new ImageData(S.W, S.H);
  data.data.set(imageOf(S.current));
  $("image").getContext("2d").putImageData(data, 0, 0);
  layout();
  drawOverlay();
  updatePanel();
}

function refresh(i) {
  drawThumb(i);
  if (i === S.current) { drawOverlay(); updatePanel(); caption(); }
  updateProgress();
}

// -- changes --------------------------------------------------------------------------------

function snapshot(i) {
  return {
    mask: S.masks[i].slice(), box: S.boxes[i] && S.boxes[i].slice(), source: S.source[i],
    checked: S.checked[i], skipped: S.skipped[i], label: S.labels[i],
  };
}

function restore(i, snap) {
  S.masks[i].set(snap.mask);
  Object.assign(S.boxes, { [i]: snap.box });
  S.source[i] = snap.source; S.checked[i] = snap.checked;
  S.skipped[i] = snap.skipped; S.labels[i] = snap.label;
}

function send(i, withMask) {
  const change = {
    label: S.labels[i], source: S.source[i], checked: S.checked[i], skipped: S.skipped[i],
    box: S.boxes[i] ? S.boxes[i].map(Math.round) : null,
  };
  if (withMask) change.mask = toBase64(S.masks[i]);
  server.update(i, change);
}

// Records the state before a change (for undo), then marks the probe checked and sends it.
function commit(i, before, maskChanged) {
  S.undo.push({ i, before });
  if (S.undo.length > 300) S.undo.shift();
  if (maskChanged) {
    if (isEmpty(S.masks[i])) S.source[i] = "empty";
    else if (S.source[i] === "proposed") S.source[i] = "corrected";
    else if (S.source[i] === "empty") S.source[i] = "drawn";
  }
  S.checked[i] = true;
  refresh(i);
  send(i, maskChanged);
}

function setLabel(k) {
  const i = S.current;
  if (S.classNames && k >= S.classNames.length) return;
  const before = snapshot(i);
  S.labels[i] = k;
  commit(i, before, false);
}

function undo() {
  const step = S.undo.pop();
  if (!step) return;
  restore(step.i, step.before);
  if (step.i !== S.current) select(step.i);
  refresh(step.i);
  send(step.i, true);
}

function accept() {
  const i = S.current, before = snapshot(i);
  if (!S.checked[i]) commit(i, before, false);
  for (let k = 1; k <= S.n; k++) {
    const j = (i + k) % S.n;
    if (!S.checked[j]) return select(j);
  }
  select(i + 1);
}

function toggleSkip() {
  const i = S.current, before = snapshot(i);
  S.skipped[i] = !S.skipped[i];
  commit(i, before, false);
}

function clearMask() {
  const i = S.current, before = snapshot(i);
  S.masks[i].fill(0);
  S.boxes[i] = null;
  commit(i, before, true);
}

function setTool(tool) {
  S.tool = tool;
  for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("on", b.dataset.tool === tool);
  const wrap = $("wrap");
  wrap.classList.remove("tool-box", "tool-brush", "tool-erase");
  wrap.classList.add(`tool-${tool}`);
  $("cursor").hidden = tool === "box";
}

function setRadius(r) {
  S.radius = Math.max(1, Math.min(40, r));
  $("radius").value = String(S.radius);
  $("radius-value").textContent = String(S.radius);
  layout();
}

function setZoom(z) {
  S.zoom = z === null ? null : Math.max(0.1, Math.min(64, z));
  layout();
}

// -- pointer --------------------------------------------------------------------------------

function toImage(e) {
  const r = $("wrap").getBoundingClientRect();
  return { x: (e.clientX - r.left) / S.scale, y: (e.clientY - r.top) / S.scale, sx: e.clientX - r.left, sy: e.clientY - r.top };
}

const clampX = (v) => Math.max(0, Math.min(S.W, Math.round(v)));
const clampY = (v) => Math.max(0, Math.min(S.H, Math.round(v)));

// Which edges of the current box a press at screen point p grabs: "l", "r", "t", "b", "move".
function grab(p) {
  const b = S.boxes[S.current];
  if (!b) return null;
  const s = S.scale, [l, t, r, bt] = b.map((v) => v * s);
  const inY = p.sy > t - HANDLE_PX && p.sy < bt + HANDLE_PX;
  const inX = p.sx > l - HANDLE_PX && p.sx < r + HANDLE_PX;
  const edges = [];
  if (inY && Math.abs(p.sx - l) <= HANDLE_PX) edges.push("l");
  if (inY && Math.abs(p.sx - r) <= HANDLE_PX) edges.push("r");
  if (inX && Math.abs(p.sy - t) <= HANDLE_PX) edges.push("t");
  if (inX && Math.abs(p.sy - bt) <= HANDLE_PX) edges.push("b");
  if (edges.length) return edges;
  if (p.sx > l && p.sx < r && p.sy > t && p.sy < bt) return ["move"];
  return null;
}

function onDown(e) {
  if (e.button !== 0) return;
  $("wrap").setPointerCapture(e.pointerId);
  const i = S.current, p = toImage(e);
  const drag = { i, before: snapshot(i), start: p, last: p, moved: false };
  if (S.tool === "box") {
    drag.edges = e.shiftKey ? null : grab(p); // Shift: always a new box
    drag.box = S.boxes[i] ? S.boxes[i].slice() : null;
  } else {
    stampSegment(S.masks[i], S.W, S.H, p, p, S.radius, S.tool === "brush" ? 1 : 0);
    drawOverlay();
  }
  S.drag = drag;
}

function onMove(e) {
  const p = toImage(e), cur = $("cursor");
  cur.style.left = `${p.sx}px`; cur.style.top = `${p.sy}px`;
  if (S.tool === "box" && !S.drag) $("wrap").style.cursor = cursorFor(grab(p));
  const d = S.drag;
  if (!d) return;
  d.moved = true;
  if (S.tool === "box") {
    let box;
    if (!d.edges) {
      box = [clampX(Math.min(d.start.x, p.x)), clampY(Math.min(d.start.y, p.y)),
        clampX(Math.max(d.start.x, p.x)), clampY(Math.max(d.start.y, p.y))];
    } else if (d.edges[0] === "move") {
      const [x0, y0, x1, y1] = d.box, w = x1 - x0, h = y1 - y0;
      const nx = Math.max(0, Math.min(S.W - w, Math.round(x0 + p.x - d.start.x)));
      const ny = Math.max(0, Math.min(S.H - h, Math.round(y0 + p.y - d.start.y)));
      box = [nx, ny, nx + w, ny + h];
    } else {
      let [x0, y0, x1, y1] = d.box;
      if (d.edges.includes("l")) x0 = clampX(p.x);
      if (d.edges.includes("r")) x1 = clampX(p.x);
      if (d.edges.includes("t")) y0 = clampY(p.y);
      if (d.edges.includes("b")) y1 = clampY(p.y);
      box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    }
    S.boxes[d.i] = box;
    fillBox(S.masks[d.i], S.W, S.H, box);
  } else {
    stampSegment(S.masks[d.i], S.W, S.H, d.last, p, S.radius, S.tool === "brush" ? 1 : 0);
  }
  d.last = p;
  drawOverlay();
}

function onUp() {
  const d = S.drag;
  S.drag = null;
  if (!d) return;
  if (S.tool === "box") {
    const b = S.boxes[d.i];
    if (!d.moved || !b || b[2] <= b[0] || b[3] <= b[1]) { // a click, or an empty box: no change
      restore(d.i, d.before);
      drawOverlay();
      return;
    }
  }
  commit(d.i, d.before, true);
}

function cursorFor(edges) {
  if (!edges) return "crosshair";
  if (edges[0] === "move") return "move";
  const e = edges.join("");
  if (e === "lt" || e === "rb") return "nwse-resize";
  if (e === "rt" || e === "lb") return "nesw-resize";
  return e === "l" || e === "r" ? "ew-resize" : "ns-resize";
}

// -- keys -----------------------------------------------------------------------------------

function onKey(e) {
  if (e.target.matches("input, select") && !["Enter", "Escape"].includes(e.key)) return;
  const k = e.key, ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && k.toLowerCase() === "s") { e.preventDefault(); save(false); return; }
  if (ctrl && k.toLowerCase() === "z") { e.preventDefault(); undo(); return; }
  if (ctrl || e.altKey) return;
  const actions = {
    ArrowRight: () => select(S.current + 1), ArrowLeft: () => select(S.current - 1),
    n: () => select(S.current + 1), p: () => select(S.current - 1),
    b: () => setTool("box"), d: () => setTool("brush"), e: () => setTool("erase"),
    z: undo, x: toggleSkip, Enter: accept, Delete: clearMask, Backspace: clearMask,
    "[": () => setRadius(S.radius - 1), "]": () => setRadius(S.radius + 1),
    "+": () => setZoom(S.scale * 1.25), "=": () => setZoom(S.scale * 1.25),
    "-": () => setZoom(S.scale / 1.25), f: () => setZoom(null),
    h: () => $("wrap").classList.toggle("hide-mask"),
  };
  const action = actions[k] ?? actions[k.toLowerCase()];
  if (action) { e.preventDefault(); if (e.target.blur) e.target.blur(); action(); return; }
  if (/^[0-9]$/.test(k)) { e.preventDefault(); setLabel(Number(k)); }
}

// -- saving ---------------------------------------------------------------------------------

function setStatus(text, bad = false) {
  $("status").textContent = text;
  $("status").classList.toggle("bad", bad);
}

async function save(quit) {
  try {
    const result = await server.save();
    setStatus("saved");
    if (quit) {
      await server.quit();
      $("done-text").textContent = result.summary;
      $("done").hidden = false;
    }
  } catch (err) {
    setStatus(`not saved: ${err.message}`, true);
  }
}

// -- wiring ---------------------------------------------------------------------------------

function wire() {
  const wrap = $("wrap");
  wrap.addEventListener("pointerdown", onDown);
  wrap.addEventListener("pointermove", onMove);
  wrap.addEventListener("pointerup", onUp);
  wrap.addEventListener("pointercancel", onUp);
  wrap.addEventListener("pointerenter", () => { $("cursor").hidden = S.tool === "box"; });
  wrap.addEventListener("pointerleave", () => { $("cursor").hidden = true; });
  $("viewport").addEventListener("wheel", (e) => {
    if (!e.ctrlKey) return;
    e.preventDefault();
    setZoom(S.scale * (e.deltaY < 0 ? 1.25 : 0.8));
  }, { passive: false });
  for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("radius").addEventListener("input", () => setRadius(Number($("radius").value)));
  $("accept").addEventListener("click", accept);
  $("skip").addEventListener("click", toggleSkip);
  $("clear").addEventListener("click", clearMask);
  $("undo").addEventListener("click", undo);
  $("save").addEventListener("click", () => save(false));
  $("quit").addEventListener("click", () => save(true));
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => layout());
  window.addEventListener("beforeunload", (e) => { if (server.pending) e.preventDefault(); });
}

wire();
load().catch((err) => setStatus(`cannot load: ${err.message}`, true));
