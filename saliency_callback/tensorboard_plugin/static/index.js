// The Saliency tab: for each run holding SaliencyCallback's summaries, the verdict, the
// signals' curves and a grid of every probe at every logged step; click a cell for the full
// panel and the background tests. Loaded by TensorBoard's plugin_entry.html (an ES module in a
// same-origin iframe, under TensorBoard's CSP: no inline script, nothing from another origin).

import { drawChart, formatValue } from "./chart.js";

const STORE = "saliency-dashboard";
// What a grid cell shows: a tile of the probe's panel (image | saliency | overlay).
// The saliency map reads best at thumbnail size (where it lies: object or background).
const TILES = { saliency: "saliency map", overlay: "overlay", image: "image" };
const THUMB_MARGIN = "200px 600px 200px 600px";
const REFRESH_MS = 30000;
const EMPTY_REFRESH_MS = 5000; // until a run holds our summaries
// The curves shown first (the alarm's own signal is always shown); the others fold away.
const PRIMARY = ["background/reliance", "background/flip_rate", "background/harm", "background/gap", "mass_in_mask"];

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function query(path, params) {
  return `./${path}?${new URLSearchParams(params).toString()}`;
}

async function getJSON(path, params = {}) {
  const response = await fetch(query(path, params));
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${path}: HTTP ${response.status}`);
  return body;
}

function epochText(step) {
  return step < 0 ? `step ${step} (before training)` : `step ${step} (after epoch ${step + 1})`;
}

function loadStylesheet() {
  if (document.querySelector("link[data-saliency]")) return;
  document.head.appendChild(h("link", { rel: "stylesheet", href: "./style.css", "data-saliency": "1" }));
}

// --- verdict ---------------------------------------------------------------------------------

function verdictCard(data) {
  const v = data.verdict;
  const logged = data.steps.length;
  const facts = h("div", { class: "sal-facts" },
    h("span", {}, `${logged} logged step${logged === 1 ? "" : "s"}`),
    h("span", {}, `${data.probes} probe${data.probes === 1 ? "" : "s"}`),
    logged ? h("span", {}, `latest: step ${data.steps[logged - 1].step}`) : null,
    v.monitor ? h("span", {}, "watching ", h("code", {}, v.monitor)) : null,
  );
  let title;
  let body = [];
  if (v.state === "alarm") {
    title = [h("span", { class: "sal-badge" }, "Shortcut alarm"), ` first at ${epochText(v.first)}`];
    const first = v.messages.find((m) => m[0] === v.first) || v.messages[0];
    if (first) body.push(h("p", { class: "sal-message" }, first[1]));
    if (v.alarm_steps.length > 1) {
      body.push(h("p", { class: "sal-more" }, `Fired at ${v.alarm_steps.length} steps: ${v.alarm_steps.join(", ")}.`));
    }
  } else if (v.state === "clear") {
    title = [h("span", { class: "sal-badge" }, "No alarm"), ` in ${v.checked} checked step${v.checked === 1 ? "" : "s"}`];
  } else if (v.state === "cannot_tell") {
    // Never "no alarm": the alarm could not judge the latest step (see unmeasured.py).
    const at = v.harm && v.harm.cannot_tell ? v.harm.step : v.unchecked.at(-1);
    title = [h("span", { class: "sal-badge" }, "Cannot tell"), ` at ${epochText(at)}`];
    body.push(h("p", { class: "sal-message sal-cannot-tell" }, v.reason));
  } else {
    title = [h("span", { class: "sal-badge" }, "No alarm configured")];
    body.push(h("p", { class: "sal-more" },
      "These are the signals only. Pass ", h("code", {}, "alarm=ShortcutAlarm()"),
      " to the callback for a verdict."));
  }
  if (v.harm && v.harm.cannot_tell) {
    // "Cannot tell: the estimate rests on n of N probes ...", said once on the card.
    if (v.state !== "cannot_tell") body.push(h("p", { class: "sal-harm sal-cannot-tell" }, v.harm.sentence));
  } else if (v.harm && v.harm.value !== null) {
    const bounds = v.harm.low !== null && v.harm.high !== null
      ? ` (between ${formatValue(v.harm.low, "fraction")} and ${formatValue(v.harm.high, "fraction")})`
      : "";
    body.push(h("p", { class: "sal-harm" },
      h("strong", {}, `Estimated harm: ${formatValue(v.harm.value, "fraction")}`),
      `${bounds} of accuracy lost where the background disagrees, at step ${v.harm.step}.`));
  }
  if (v.state !== "cannot_tell" && v.unchecked && v.unchecked.length) {
    body.push(h("p", { class: "sal-more" }, `The alarm could not judge step${v.unchecked.length === 1 ? "" : "s"} ${v.unchecked.join(", ")}.`));
  }
  if (data.nonfinite.length) {
    body.push(h("p", { class: "sal-more" }, `Outputs were NaN/inf at steps ${data.nonfinite.join(", ")} (no pictures).`));
  }
  return h("div", { class: `sal-verdict state-${v.state}`, "data-state": v.state },
    h("div", { class: "sal-verdict-title" }, title), body, facts);
}

// --- curves ----------------------------------------------------------------------------------

function chartsSection(data, onPick) {
  const steps = data.steps.map((s) => s.step);
  const all = data.signals.flatMap((s) => s.points.map((p) => p[0]));
  const x0 = Math.min(...steps, ...all);
  const x1 = Math.max(...steps, ...all);
  const wrap = h("div", { class: "sal-charts" });
  const more = h("div", { class: "sal-charts" });
  const main = new Set([data.verdict.monitor, ...PRIMARY]);
  for (const signal of data.signals) {
    const legend = [];
    if (signal.limit) legend.push(h("span", { class: "sal-key limit" }, "alarm threshold"));
    if (signal.chance) legend.push(h("span", { class: "sal-key chance" }, "chance"));
    if (signal.band) legend.push(h("span", { class: "sal-key band" }, "bounds"));
    const last = signal.points.filter((p) => p[1] !== null).at(-1);
    (main.has(signal.name) ? wrap : more).appendChild(h("figure", { class: "sal-chart-card", "data-signal": signal.name },
      h("figcaption", {},
        h("span", { class: "sal-chart-title", title: signal.hint ? `${signal.hint} (${signal.tag})` : signal.tag }, signal.label),
        h("span", { class: "sal-chart-value" }, last ? formatValue(last[1], signal.unit) : "")),
      signal.hint ? h("div", { class: "sal-chart-hint", title: signal.hint }, signal.hint) : null,
      drawChart(signal, { x0, x1, alarmSteps: data.verdict.alarm_steps, watched: data.verdict.monitor, onPick }),
      legend.length ? h("div", { class: "sal-legend" }, legend) : null));
  }
  if (!wrap.children.length) wrap.append(...more.children); // no known signal: show them all
  if (!data.signals.length) wrap.appendChild(h("p", { class: "sal-more" }, "No scalar signals in this run."));
  if (!more.children.length) return wrap;
  return h("div", {}, wrap, h("details", { class: "sal-details" },
    h("summary", {}, `${more.children.length} more signal${more.children.length === 1 ? "" : "s"}`), more));
}

// --- grid ------------------------------------------------------------------------------------

function gridSection(run, data, openCell, tile) {
  const alarmed = new Set(data.verdict.alarm_steps);
  const scroller = h("div", { class: "sal-grid-scroll" });
  const table = h("table", { class: "sal-grid" });
  const head = h("tr", {}, h("th", { class: "sal-corner" }, "probe \\ step"));
  for (const s of data.steps) {
    head.appendChild(h("th", { class: alarmed.has(s.step) ? "sal-step alarm" : "sal-step", "data-step": s.step,
      title: alarmed.has(s.step) ? `${epochText(s.step)}: alarm` : epochText(s.step) }, String(s.step)));
  }
  table.appendChild(h("thead", {}, head));
  const body = h("tbody");
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      const img = e.target;
      observer.unobserve(img);
      img.src = img.dataset.src;
    }
  }, { root: scroller, rootMargin: THUMB_MARGIN });
  for (let p = 0; p < data.probes; p++) {
    const row = h("tr", {}, h("th", { class: "sal-probe" }, `#${p}`));
    for (const s of data.steps) {
      const cell = h("td", { class: alarmed.has(s.step) ? "sal-cell alarm" : "sal-cell", "data-step": s.step, "data-probe": p });
      if (p < s.samples) {
        const img = h("img", {
          class: "sal-thumb",
          alt: `probe ${p}, step ${s.step}`,
          width: 48,
          height: 48,
          decoding: "async",
          "data-src": query("thumb", { run, step: s.step, probe: p, tile, v: s.version }),
        });
        cell.appendChild(img);
        cell.addEventListener("click", () => openCell(run, data, s.step, p));
        observer.observe(img);
      } else {
        cell.appendChild(h("span", { class: "sal-missing", title: "left out of this step (max_step_bytes)" }, "–"));
      }
      row.appendChild(cell);
    }
    body.appendChild(row);
  }
  table.appendChild(body);
  scroller.appendChild(table);
  return scroller;
}

function scrollToStep(section, step) {
  const scroller = section.querySelector(".sal-grid-scroll");
  const th = section.querySelector(`th.sal-step[data-step="${step}"]`);
  if (!scroller || !th) return;
  const corner = section.querySelector(".sal-corner");
  scroller.scrollTo({ left: Math.max(0, th.offsetLeft - (corner ? corner.offsetWidth : 0) - 8), behavior: "smooth" });
  th.classList.add("flash");
  setTimeout(() => th.classList.remove("flash"), 1200);
}

// --- one run ---------------------------------------------------------------------------------

function runSection(run, data, openCell, tile) {
  const section = h("section", { class: "sal-run", "data-run": run });
  section.appendChild(h("h2", { class: "sal-run-name" }, run));
  section.appendChild(verdictCard(data));
  if (data.verdict.first !== null) {
    section.querySelector(".sal-verdict-title").appendChild(
      h("button", { class: "sal-link", onclick: () => scrollToStep(section, data.verdict.first) }, "show in grid"));
  }
  section.appendChild(h("h3", {}, "Signals"));
  section.appendChild(chartsSection(data, (step) => scrollToStep(section, step)));
  section.appendChild(h("h3", {}, "Every probe at every logged step",
    h("span", { class: "sal-hint" }, ` ${TILES[tile]}; click a cell for the panel and the background tests`)));
  if (data.steps.length) section.appendChild(gridSection(run, data, openCell, tile));
  else section.appendChild(h("p", { class: "sal-more" }, "No saliency images in this run yet."));
  return section;
}

function errorSection(run, err) {
  return h("section", { class: "sal-run" }, h("h2", { class: "sal-run-name" }, run),
    h("div", { class: "sal-error" }, `Could not read this run: ${err.message}`));
}

// --- the panel of one cell -------------------------------------------------------------------

// Small panels (tiny probes) are shown at up to 3x, pixel for pixel, within the dialog.
function zoom(event) {
  const img = event.target;
  const factor = Math.max(1, Math.min(3, Math.floor(1000 / img.naturalWidth)));
  img.style.width = `${img.naturalWidth * factor}px`;
}

class Panel {
  constructor(root) {
    this.root = root;
    this.node = h("div", { class: "sal-overlay", hidden: true, onclick: (e) => { if (e.target === this.node) this.close(); } });
    root.appendChild(this.node);
    document.addEventListener("keydown", (e) => this.key(e));
  }

  close() {
    this.node.hidden = true;
    this.node.replaceChildren();
    this.current = null;
  }

  key(e) {
    if (!this.current) return;
    const { run, data, step, probe } = this.current;
    const steps = data.steps.map((s) => s.step);
    const i = steps.indexOf(step);
    if (e.key === "Escape") this.close();
    else if (e.key === "ArrowRight" && i + 1 < steps.length) this.open(run, data, steps[i + 1], probe);
    else if (e.key === "ArrowLeft" && i > 0) this.open(run, data, steps[i - 1], probe);
    else if (e.key === "ArrowDown" && probe + 1 < data.probes) this.open(run, data, step, probe + 1);
    else if (e.key === "ArrowUp" && probe > 0) this.open(run, data, step, probe - 1);
    else return;
    e.preventDefault();
  }

  async open(run, data, step, probe) {
    this.current = { run, data, step, probe };
    const entry = data.steps.find((s) => s.step === step);
    const steps = data.steps.map((s) => s.step);
    const i = steps.indexOf(step);
    const nav = (label, target, enabled) => h("button", { class: "sal-nav", disabled: !enabled, onclick: target }, label);
    const alarmed = data.verdict.alarm_steps.includes(step);
    const dialog = h("div", { class: "sal-dialog", role: "dialog", "aria-label": `probe ${probe} at step ${step}` },
      h("div", { class: "sal-dialog-head" },
        h("div", {},
          h("div", { class: "sal-dialog-title" }, `Probe #${probe} · ${epochText(step)}`),
          h("div", { class: "sal-dialog-sub" }, run, alarmed ? h("span", { class: "sal-badge small" }, "alarm at this step") : null)),
        h("div", { class: "sal-dialog-nav" },
          nav("← step", () => this.open(run, data, steps[i - 1], probe), i > 0),
          nav("step →", () => this.open(run, data, steps[i + 1], probe), i + 1 < steps.length),
          nav("↑ probe", () => this.open(run, data, step, probe - 1), probe > 0),
          nav("↓ probe", () => this.open(run, data, step, probe + 1), probe + 1 < data.probes),
          h("button", { class: "sal-close", onclick: () => this.close(), "aria-label": "close" }, "×"))),
      h("div", { class: "sal-dialog-body" }, h("p", { class: "sal-more" }, "Loading…")));
    this.node.replaceChildren(dialog);
    this.node.hidden = false;
    let cell;
    try {
      cell = await getJSON("cell", { run, step, probe });
    } catch (err) {
      dialog.querySelector(".sal-dialog-body").replaceChildren(h("div", { class: "sal-error" }, err.message));
      return;
    }
    if (!this.current || this.current.step !== step || this.current.probe !== probe || this.current.run !== run) return;
    const body = [];
    if (cell.panel) {
      body.push(h("figure", { class: "sal-figure" },
        h("figcaption", {}, "image | saliency | overlay"),
        h("img", { class: "sal-panel-img", alt: "saliency panel", onload: zoom, src: query("image", { run, tag: "probes", step, sample: probe, v: entry.version }) })));
    }
    const bg = data.background[String(step)];
    if (cell.background && bg) {
      body.push(h("figure", { class: "sal-figure" },
        h("figcaption", {}, "background tests: original | only_fg | only_bg | mixed_rand"),
        h("img", { class: "sal-background-img", alt: "background tests", onload: zoom, src: query("image", { run, tag: "background", step, sample: probe, v: bg.version }) })));
    } else {
      body.push(h("p", { class: "sal-more" }, "No background tests at this step (they need masks or boxes)."));
    }
    if (cell.values.length) {
      body.push(h("table", { class: "sal-values" }, cell.values.map((v) =>
        h("tr", {}, h("th", {}, v.label), h("td", {}, formatValue(v.value, v.unit))))));
    }
    if (cell.descriptions.background) body.push(h("p", { class: "sal-desc" }, cell.descriptions.background.replace(/\*\*/g, "")));
    dialog.querySelector(".sal-dialog-body").replaceChildren(...body);
  }
}

// --- the page --------------------------------------------------------------------------------

function emptyState(listing) {
  const others = listing.other_runs || [];
  return h("div", { class: "sal-empty" },
    h("h2", {}, "No run here holds SaliencyCallback summaries yet"),
    h("p", {}, "Add the callback to ", h("code", {}, "model.fit"), " with the same log directory TensorBoard reads:"),
    h("pre", {}, "from saliency_callback import SaliencyCallback, ShortcutAlarm\n\n" +
      "cb = SaliencyCallback(probe_images, probe_labels, masks=probe_masks,\n" +
      "                      log_dir=\"logs\", alarm=ShortcutAlarm())\n" +
      "model.fit(x, y, epochs=20, callbacks=[cb])\n\n" +
      "# then: tensorboard --logdir logs"),
    h("p", {}, "Each logged epoch then adds a column of saliency overlays, the background tests and the alarm's verdict to this tab. This page checks for new runs every 5 s."),
    others.length
      ? h("p", { class: "sal-more" }, `Runs found without saliency summaries: ${others.join(", ")}.`)
      : h("p", { class: "sal-more" }, "TensorBoard found no runs at all in its --logdir."));
}

class App {
  constructor(root) {
    this.root = root;
    this.runs = [];
    this.texts = new Map();
    this.saved = this.load();
    this.header = h("header", { class: "sal-top" });
    this.main = h("main", { class: "sal-main" });
    root.append(this.header, this.main);
    this.panel = new Panel(root);
  }

  load() {
    try {
      return JSON.parse(localStorage.getItem(STORE) || "{}");
    } catch (err) {
      return {};
    }
  }

  save() {
    try {
      localStorage.setItem(STORE, JSON.stringify({ a: this.a, b: this.b, tile: this.tile }));
    } catch (err) {
      /* storage may be off: the choice is then not remembered */
    }
  }

  async listing() {
    try {
      return await getJSON("runs");
    } catch (err) {
      return { error: err };
    }
  }

  async start() {
    await this.update(await this.listing(), true);
  }

  // Lists the runs again: a run that appears (training started after TensorBoard) is offered,
  // and the empty state gives way to it without a reload.
  async refresh() {
    await this.update(await this.listing(), false);
  }

  async update(listing, force) {
    if (listing.error) {
      if (!this.runs.length) {
        this.main.replaceChildren(h("div", { class: "sal-error" }, `Could not list the runs: ${listing.error.message}`));
      }
      return; // a run already shown stays; the next refresh tries again
    }
    const wasEmpty = !this.runs.length;
    const changed = listing.runs.join("\n") !== this.runs.join("\n");
    this.runs = listing.runs;
    if (!this.runs.length) {
      this.header.replaceChildren(h("h1", {}, "Saliency"));
      this.main.replaceChildren(emptyState(listing));
      return;
    }
    if (wasEmpty || changed) {
      const pick = (current, saved) => (this.runs.includes(current) ? current : this.runs.includes(saved) ? saved : null);
      this.a = pick(this.a, this.saved.a) || this.runs[0];
      this.b = pick(this.b, this.saved.b) || "";
      if (this.b === this.a) this.b = "";
      this.tile = this.tile || (this.saved.tile in TILES ? this.saved.tile : "saliency");
      this.drawHeader();
    }
    await this.show(force || wasEmpty);
  }

  drawHeader() {
    const select = (id, value, withNone) => {
      const node = h("select", { id, onchange: (e) => this.choose(id, e.target.value) },
        withNone ? h("option", { value: "" }, "(none)") : null,
        this.runs.map((r) => h("option", { value: r, selected: r === value }, r)));
      node.value = value;
      return node;
    };
    this.header.replaceChildren(
      h("h1", {}, "Saliency"),
      h("label", {}, "Run ", select("sal-run-a", this.a, false)),
      h("label", {}, "compare with ", select("sal-run-b", this.b, true)),
      h("label", {}, "cells ", h("select", { id: "sal-tile", onchange: (e) => this.choose("sal-tile", e.target.value) },
        Object.entries(TILES).map(([k, label]) => h("option", { value: k, selected: k === this.tile }, label)))),
      h("button", { class: "sal-reload", onclick: () => this.refresh(), title: "list the runs and read their event files again" }, "Reload"));
  }

  choose(id, value) {
    if (id === "sal-run-a") this.a = value;
    else if (id === "sal-tile") this.tile = value;
    else this.b = value;
    this.save();
    this.show(true);
  }

  async show(force) {
    const seq = (this.seq = (this.seq || 0) + 1);
    const runs = [this.a, this.b].filter((r, i, all) => r && all.indexOf(r) === i);
    const results = await Promise.all(runs.map(async (run) => {
      try {
        const data = await getJSON("run", { run });
        return { run, data, text: JSON.stringify(data) };
      } catch (err) {
        return { run, err };
      }
    }));
    if (seq !== this.seq) return; // a newer choice of runs is being drawn
    const same = !force && results.every((r) => r.text && this.texts.get(r.run) === r.text);
    if (same && this.main.querySelectorAll(".sal-run").length === runs.length) return;
    const scroll = new Map([...this.main.querySelectorAll(".sal-run")].map((s) => {
      const g = s.querySelector(".sal-grid-scroll");
      return [s.dataset.run, g ? [g.scrollLeft, g.scrollTop] : null];
    }));
    this.texts = new Map(results.filter((r) => r.text).map((r) => [r.run, r.text]));
    const open = (run, data, step, probe) => this.panel.open(run, data, step, probe);
    const sections = results.map((r) => (r.err ? errorSection(r.run, r.err) : runSection(r.run, r.data, open, this.tile)));
    this.main.className = runs.length > 1 ? "sal-main compare" : "sal-main";
    this.main.replaceChildren(...sections);
    for (const s of sections) {
      const kept = scroll.get(s.dataset.run);
      const g = s.querySelector(".sal-grid-scroll");
      if (kept && g) [g.scrollLeft, g.scrollTop] = kept;
    }
    document.body.dataset.loaded = String(Date.now());
  }
}

export async function render() {
  loadStylesheet();
  const root = h("div", { class: "sal-app" });
  document.body.appendChild(root);
  const app = new App(root);
  await app.start();
  const tick = async () => {
    if (document.visibilityState !== "hidden") await app.refresh();
    setTimeout(tick, app.runs.length ? REFRESH_MS : EMPTY_REFRESH_MS);
  };
  setTimeout(tick, app.runs.length ? REFRESH_MS : EMPTY_REFRESH_MS);
}
