// One signal's curve as an SVG: the values, the alarm's threshold, the chance level, a band
// (e.g. the harm's bounds) and the alarm epochs. No chart library: a few SVG elements.

const SVG = "http://www.w3.org/2000/svg";
const W = 340;
const H = 150;
const M = { left: 40, right: 10, top: 10, bottom: 24 };

function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

export function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "n/a";
  if (unit === "fraction" && value === 0) return "0%";
  if (unit === "fraction") return `${(value * 100).toFixed(Math.abs(value) < 0.1 ? 1 : 0)}%`;
  return Number(value).toPrecision(3);
}

function finite(points) {
  return points.filter((p) => p[1] !== null && Number.isFinite(p[1]));
}

function niceTicks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-6; t += step) ticks.push(t);
  return ticks;
}

// The path of a series, broken where values are missing.
function pathOf(points, x, y) {
  let d = "";
  let pen = false;
  for (const [s, v] of points) {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${x(s).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * Draws `signal` ({name, label, unit, side, points, band, chance, limit}) over the steps
 * `[x0, x1]`; `alarmSteps` are marked on the watched signal (red dots and a red rule), and as
 * faint rules on the others.
 */
export function drawChart(signal, { x0, x1, alarmSteps, watched, onPick }) {
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "sal-chart",
    role: "img",
    "data-signal": signal.name,
  });
  const all = [
    ...finite(signal.points),
    ...(signal.limit ? finite(signal.limit) : []),
    ...(signal.chance ? finite(signal.chance) : []),
    ...(signal.band ? [...finite(signal.band.low), ...finite(signal.band.high)] : []),
  ].map((p) => p[1]);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (!all.length) {
    lo = 0;
    hi = 1;
  }
  if (signal.unit === "fraction") {
    lo = Math.min(0, lo);
    hi = Math.max(1, hi);
  } else if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  } else {
    const pad = (hi - lo) * 0.08;
    lo -= pad;
    hi += pad;
  }
  const span = x1 - x0 || 1;
  const x = (s) => M.left + ((s - x0) / span) * (W - M.left - M.right);
  const y = (v) => M.top + (1 - (v - lo) / (hi - lo)) * (H - M.top - M.bottom);
  el("rect", { class: "sal-plot", x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom }, svg);
  for (const t of niceTicks(lo, hi, 4)) {
    el("line", { class: "sal-gridline", x1: M.left, x2: W - M.right, y1: y(t), y2: y(t) }, svg);
    const label = el("text", { class: "sal-tick", x: M.left - 4, y: y(t) + 3, "text-anchor": "end" }, svg);
    label.textContent = formatValue(t, signal.unit);
  }
  for (const t of niceTicks(x0, x1, 6).filter((t) => Number.isInteger(t))) {
    const label = el("text", { class: "sal-tick", x: x(t), y: H - 8, "text-anchor": "middle" }, svg);
    label.textContent = String(t);
  }
  const isWatched = watched === signal.name;
  for (const s of alarmSteps) {
    el("line", {
      class: isWatched ? "sal-alarm-rule" : "sal-alarm-rule faint",
      x1: x(s),
      x2: x(s),
      y1: M.top,
      y2: H - M.bottom,
      "data-step": s,
    }, svg);
  }
  if (signal.band) {
    const low = finite(signal.band.low);
    const high = finite(signal.band.high).reverse();
    if (low.length && high.length) {
      const pts = [...low, ...high].map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`);
      el("polygon", { class: "sal-band", points: pts.join(" ") }, svg);
    }
  }
  if (signal.chance) {
    el("path", { class: "sal-chance", d: pathOf(signal.chance, x, y) }, svg);
  }
  if (signal.limit) {
    const path = el("path", { class: "sal-limit", d: pathOf(signal.limit, x, y) }, svg);
    const title = el("title", {}, path);
    const last = finite(signal.limit).at(-1);
    title.textContent = `alarm threshold: ${last ? formatValue(last[1], signal.unit) : "n/a"}`;
  }
  el("path", { class: "sal-line", d: pathOf(signal.points, x, y) }, svg);
  const alarmed = new Set(alarmSteps);
  const limits = new Map(signal.limit ? finite(signal.limit) : []);
  const beyond = (s, v) => limits.has(s) && (signal.side === "below" ? v < limits.get(s) : v > limits.get(s));
  for (const [s, v] of finite(signal.points)) {
    const mark = isWatched && alarmed.has(s);
    const dot = el("circle", {
      class: mark ? "sal-dot sal-alarm-mark" : beyond(s, v) ? "sal-dot beyond" : "sal-dot",
      cx: x(s),
      cy: y(v),
      r: mark ? 4.5 : 2.2,
      "data-step": s,
    }, svg);
    el("title", {}, dot).textContent = `step ${s}: ${formatValue(v, signal.unit)}${mark ? " (alarm)" : ""}`;
    if (onPick) dot.addEventListener("click", () => onPick(s));
  }
  return svg;
}
