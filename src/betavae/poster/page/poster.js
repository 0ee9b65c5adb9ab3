// betavae interactive poster: every result of `betavae reproduce` drawn from poster.json (the study's
// numbers), and every run behind a figure opened on demand and decoded live by ONNX Runtime Web.
// poster.json holds the claims and, per part of the study, its sweeps' rows; each row's `model` is the
// folder of its run: decoder.onnx (z [batch, M] → image [batch, C, H, W] in [0, 1]), model.json (KL per
// dimension, their order, the held-out images' codes), test_images.png and reconstructions.png.
// Decoders are fetched only when their run is opened: the page must open fast whatever the study's size.
"use strict";

const SLIDER_RANGE = 3;          // sliders span −3 … 3 (the prior's ±3σ)
const TRAVERSAL_CELL_PX = 56;    // a traversal cell is about this tall: an integer upscaling of the image
const TRAVERSAL_GAP_PX = 2;      // white between traversal cells
const HOVER_PREFETCH_MS = 120;   // a pointer resting this long on a setting fetches its first run
const TRAVERSAL_CHUNK_ROWS = 6;  // rows decoded (and painted) at a time: 66 images, some 30 ms
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const SWEEP_ABOUT = {
  compare: "β = 1 against β = 4 at one latent size (claims 3 and 7)",
  "compare-fc": "β = 1 against β = 4 on the paper's fully connected network",
  figures: "the runs behind the report's traversal figures",
  "grid-lmse": "the β_norm × latent-size grid again, with the LMSE reconstruction loss",
};
const TARGET_NAME = { grid: "Figure 4", compare: "comparison runs", baselines: "baselines table" };
// A 70-byte ONNX model (one Identity): creating its session at load starts ONNX Runtime's WebAssembly,
// which would otherwise cost the first click; it fetches no decoder.
const WARM_MODEL = "CAcSADo6ChAKAXgSAXkiCElkZW50aXR5EgR3YXJtWg8KAXgSCgoICAESBAoCCAFiDwoBeRIKCggIARIECgIIAUIECgAQDQ==";

// What tests and curious users read: window.betavaePoster.
const poster = { error: null, opened: [], timings: [], loadMs: null, warmMs: null, warmed: null, manifest: null };
window.betavaePoster = poster;
const models = new Map(); // run folder → Promise of its loaded model (model.json, session, images)
let openToken = 0;
let cardCount = 0;

poster.ready = main().catch((error) => {
  poster.error = String(error && error.message ? error.message : error);
  setStatus(poster.error, true);
  throw error;
});

const SVG = "http://www.w3.org/2000/svg";
function svgElement(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function formatKl(kl) {
  return kl !== 0 && Math.abs(kl) < 1e-2 ? kl.toExponential(1) : formatNumber(kl);
}

function mean(values) {
  const finite = values.filter((v) => typeof v === "number" && isFinite(v));
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : null;
}

// The sample standard deviation (n − 1), null under two values.
function std(values) {
  const finite = values.filter((v) => typeof v === "number" && isFinite(v));
  if (finite.length < 2) return null;
  const m = mean(finite);
  return Math.sqrt(finite.reduce((a, v) => a + (v - m) ** 2, 0) / (finite.length - 1));
}

function same(a, b) {
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

async function main() {
  const started = performance.now();
  if (location.protocol === "file:") {
    throw new Error("This poster must be served over HTTP: run betavae poster STUDY_DIR --serve, or " +
                    "python -m http.server -d THIS_FOLDER, and open the address it prints.");
  }
  if (typeof ort === "undefined") throw new Error("ONNX Runtime Web (ort/ort.wasm.min.js) did not load");
  const response = await fetch("poster.json");
  if (!response.ok) throw new Error(`poster.json: HTTP ${response.status}`);
  const manifest = await response.json();
  if (manifest.format !== 1) throw new Error(`poster.json has format ${manifest.format}; this page reads format 1`);
  poster.manifest = manifest;
  ort.env.wasm.wasmPaths = new URL(manifest.ort, document.baseURI).href; // the module loader needs it absolute
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static host lacks

  document.getElementById("scale").textContent = `Scale: ${manifest.scale} (${manifest.scale_text})`;
  document.getElementById("command").textContent = manifest.command;
  document.getElementById("rule").textContent = manifest.rule;
  drawClaims(manifest);
  for (const part of manifest.parts) drawPart(part, manifest);
  drawTabs(manifest.parts);
  window.addEventListener("hashchange", () => navigate(location.hash));
  navigate(location.hash);
  const runs = manifest.parts.reduce((n, part) => n + Object.values(part.sweeps).flat().length, 0);
  poster.loadMs = performance.now() - started;
  setStatus(`${manifest.parts.length} parts, ${runs} runs. Click a heatmap cell, a point, a baseline row ` +
            "or a run to open it in the explorer.");
  poster.warmed = warmUp();
}

// ---------------------------------------------------------------- claims

function verdictBadge(verdict) {
  const kind = verdict === "held" ? "held" : verdict === "not held" ? "not-held" : "inconclusive";
  return element("span", { class: `verdict ${kind}`, text: verdict });
}

function drawClaims(manifest) {
  const table = document.getElementById("claims-table");
  const head = element("tr", {}, ["#", "Claim", "Paper", "Reproducibility report", "Ours", "Verdict", "Why",
                                  "Decided by"].map((name) => element("th", { text: name })));
  table.append(element("thead", {}, [head]));
  const body = element("tbody");
  manifest.claims.forEach((claim, index) => {
    // Ours is long (every part's effect, test and reason): a count of its parts' verdicts, opened on demand.
    const counts = {};
    for (const part of claim.parts) counts[part.verdict] = (counts[part.verdict] || 0) + 1;
    const summary = claim.parts.length
      ? `${claim.parts.length} part${claim.parts.length === 1 ? "" : "s"}: ` +
        Object.entries(counts).map(([verdict, n]) => `${n} ${verdict}`).join(", ")
      : "details";
    const list = element("ul", { class: "claim-parts" });
    for (const part of claim.parts) {
      list.append(element("li", {}, [element("strong", { text: part.name }), " ", verdictBadge(part.verdict),
        element("br"), `expected ${part.expected}; ours ${part.ours}`,
        element("span", { class: "why", text: ` (${part.why})` })]));
    }
    const ours = element("td", { class: "ours" }, [element("details", {}, [element("summary", { text: summary }),
      element("p", { text: claim.ours }), list])]);
    const links = element("td", { class: "decided" });
    for (const { part, sweep } of claim.decided_by) {
      const link = element("a", { href: `#${part}/${sweep}`, class: "decided-link", "data-part": part,
                                  "data-target": sweep, text: `${part}: ${TARGET_NAME[sweep] || sweep}` });
      link.addEventListener("click", (event) => {
        if (location.hash === link.getAttribute("href")) { event.preventDefault(); navigate(location.hash); }
      });
      links.append(link, " ");
    }
    if (!claim.decided_by.length) links.append(element("span", { class: "muted", text: "no part measured" }));
    body.append(element("tr", { id: `claim-${index}`, "data-claim": claim.number }, [
      element("td", { class: "number", text: claim.number }),
      element("td", { class: "claim", text: claim.claim }),
      element("td", { text: claim.paper }),
      element("td", { text: claim.reproducibility_report }),
      ours,
      element("td", {}, [verdictBadge(claim.verdict)]),
      element("td", { class: "why", text: claim.why }),
      links,
    ]));
  });
  table.append(body);
  document.getElementById("claims").hidden = false;
}

// ---------------------------------------------------------------- tabs and links

function drawTabs(parts) {
  const tabs = document.getElementById("tabs");
  for (const part of parts) {
    const tab = element("a", { class: "tab", role: "tab", href: `#${part.folder}`, "data-part": part.folder,
                               "aria-selected": "false", text: `${part.folder} · ${part.dataset}` });
    tabs.append(tab);
  }
}

function showPart(folder) {
  for (const panel of document.querySelectorAll(".part")) panel.hidden = panel.dataset.part !== folder;
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-selected", String(tab.dataset.part === folder));
  }
}

// "#shapes/grid": show the part's tab, scroll to what decides (the grid's heatmaps, the comparison runs,
// the baselines table, any sweep's runs) and highlight it; "#shapes": the tab alone.
function navigate(hash) {
  const parts = poster.manifest.parts;
  const [folder, ...rest] = decodeURIComponent(hash.replace(/^#/, "")).split("/");
  const part = parts.find((p) => p.folder === folder) || parts[0];
  if (!part) return;
  showPart(part.folder);
  for (const old of document.querySelectorAll(".highlight")) old.classList.remove("highlight");
  const target = rest.join("/");
  if (!target || part.folder !== folder) return;
  const panel = document.querySelector(`.part[data-part="${CSS.escape(part.folder)}"]`);
  const block = panel.querySelector(`[data-target="${CSS.escape(target)}"]`);
  if (!block) return;
  block.classList.add("highlight");
  for (const item of block.querySelectorAll(".cell, tr.baseline, .chip")) item.classList.add("highlight");
  block.scrollIntoView({ block: "start", behavior: "instant" });
}

// ---------------------------------------------------------------- a part: figures and tables

function drawPart(part, manifest) {
  const panel = element("section", { class: "part", id: `part-${part.folder}`, "data-part": part.folder,
                                     role: "tabpanel", hidden: "" });
  panel.append(element("h2", { text: `${part.folder}: ${part.dataset}` }),
               element("p", { class: "muted", text: `network ${part.arch}, reconstruction ${part.recon}; ` +
                 `grid of β_norm ${part.beta_norms.join(", ")} × latent size M ${part.latent_dims.join(", ")}` +
                 (part.factors ? "" : "; no ground-truth factors, so no disentanglement metric") }));
  panel.append(drawLossFigure(part), drawHeatmaps(part), drawBaselines(part), drawSweeps(part));
  document.getElementById("parts").append(panel);
}

function gridRows(part, betaNorm, latentDim) {
  return (part.sweeps.grid || []).filter((row) => same(row.beta_norm, betaNorm) && row.latent_dim === latentDim);
}

// A pointer resting on a setting (not one passing over it) fetches its first run's decoder: by the click,
// the model is loaded and only decoding is left. Nothing is fetched that the reader did not point at.
function prefetchOnHover(node, part, betaNorm, latentDim) {
  let timer = null;
  node.addEventListener("pointerenter", () => {
    timer = setTimeout(() => {
      const [first] = gridRows(part, betaNorm, latentDim);
      if (first) loadModel(first.model).catch(() => {});
    }, HOVER_PREFETCH_MS);
  });
  node.addEventListener("pointerleave", () => clearTimeout(timer));
}

function openSetting(part, betaNorm, latentDim) {
  const at = performance.now();
  const rows = gridRows(part, betaNorm, latentDim);
  if (rows.length) openRuns(part.folder, "grid", rows, at);
}

// Figure 2: the held-out loss against β_norm (log x), a line per latent size, mean ± std over seeds.
function drawLossFigure(part) {
  const figure = element("figure", { class: "fig2", "data-target": "losses" });
  const select = element("select", { "aria-label": "loss column" });
  for (const [column, label] of Object.entries(part.losses)) {
    select.append(element("option", { value: column, text: label }));
  }
  const holder = element("div", { class: "svg-holder" });
  const draw = () => { holder.replaceChildren(lossSvg(part, select.value, part.losses[select.value])); };
  select.addEventListener("change", draw);
  figure.append(element("figcaption", {}, [element("strong", { text: "Figure 2 · " }),
    "held-out ", select, " against β_norm, mean ± std over seeds. Click a point to open its runs."]), holder);
  draw();
  return figure;
}

function niceTicks(low, high, count = 5) {
  if (!(high > low)) { const pad = Math.abs(low) * 0.1 || 1; low -= pad; high += pad; }
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.floor(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  if (ticks[ticks.length - 1] < high) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}

function lossSvg(part, column, label) {
  const [width, height] = [520, 300];
  const margin = { left: 64, right: 96, top: 12, bottom: 44 };
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, class: "loss-figure", role: "img",
                                  "aria-label": `${label} against β_norm` });
  const betaNorms = part.beta_norms.filter((b) => b > 0);
  const series = part.latent_dims.map((latentDim) => ({
    latentDim,
    points: betaNorms.map((betaNorm) => {
      const rows = gridRows(part, betaNorm, latentDim);
      const values = rows.map((row) => row[column]);
      return { betaNorm, latentDim, rows, mean: mean(values), std: std(values) };
    }).filter((p) => p.mean !== null),
  }));
  const all = series.flatMap((s) => s.points);
  if (!all.length || !betaNorms.length) {
    svg.append(svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no finished grid run"));
    return svg;
  }
  const lows = all.map((p) => p.mean - (p.std || 0));
  const highs = all.map((p) => p.mean + (p.std || 0));
  const yTicks = niceTicks(Math.min(...lows), Math.max(...highs));
  const [yMin, yMax] = [yTicks[0], yTicks[yTicks.length - 1]];
  const logs = betaNorms.map(Math.log10);
  let [xMin, xMax] = [Math.min(...logs), Math.max(...logs)];
  if (xMax === xMin) { xMin -= 0.5; xMax += 0.5; }
  const pad = (xMax - xMin) * 0.06;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const x = (b) => margin.left + ((Math.log10(b) - xMin + pad) / (xMax - xMin + 2 * pad)) * plotW;
  const y = (v) => margin.top + (1 - (v - yMin) / (yMax - yMin)) * plotH;
  const axes = svgElement("g", { class: "axes" });
  for (const t of yTicks) {
    axes.append(svgElement("line", { x1: margin.left, x2: margin.left + plotW, y1: y(t), y2: y(t), class: "grid" }),
                svgElement("text", { x: margin.left - 6, y: y(t) + 4, "text-anchor": "end" }, formatNumber(t)));
  }
  for (const b of betaNorms) {
    axes.append(svgElement("line", { x1: x(b), x2: x(b), y1: margin.top + plotH, y2: margin.top + plotH + 4 }),
                svgElement("text", { x: x(b), y: margin.top + plotH + 17, "text-anchor": "middle" }, formatNumber(b)));
  }
  axes.append(
    svgElement("rect", { x: margin.left, y: margin.top, width: plotW, height: plotH, class: "frame" }),
    svgElement("text", { x: margin.left + plotW / 2, y: height - 6, "text-anchor": "middle", class: "label" },
               "β_norm (log scale)"),
    svgElement("text", { transform: `translate(14 ${margin.top + plotH / 2}) rotate(-90)`, "text-anchor": "middle",
                         class: "label" }, label));
  svg.append(axes);
  series.forEach((s, index) => {
    const colour = PALETTE[index % PALETTE.length];
    const group = svgElement("g", { class: "series", "data-latent-dim": String(s.latentDim) });
    if (s.points.length > 1) {
      group.append(svgElement("polyline", { fill: "none", stroke: colour, "stroke-width": 2,
        points: s.points.map((p) => `${x(p.betaNorm)},${y(p.mean)}`).join(" ") }));
    }
    for (const p of s.points) {
      if (p.std) {
        const [top, bottom, cx] = [y(p.mean + p.std), y(p.mean - p.std), x(p.betaNorm)];
        group.append(svgElement("path", { stroke: colour, "stroke-width": 1.5, fill: "none",
          d: `M${cx},${top}V${bottom}M${cx - 4},${top}H${cx + 4}M${cx - 4},${bottom}H${cx + 4}` }));
      }
      const point = svgElement("circle", { cx: x(p.betaNorm), cy: y(p.mean), r: 5.5, fill: colour, class: "point",
        "data-beta-norm": String(p.betaNorm), "data-latent-dim": String(p.latentDim), tabindex: "0" });
      point.append(svgElement("title", {}, `β_norm ${formatNumber(p.betaNorm)}, M ${p.latentDim}: ${label} ` +
        `${formatNumber(p.mean)}${p.std ? ` ± ${formatNumber(p.std)}` : ""} over ${p.rows.length} seed` +
        `${p.rows.length === 1 ? "" : "s"}; click to open`));
      const open = () => openSetting(part, p.betaNorm, p.latentDim);
      point.addEventListener("click", open);
      prefetchOnHover(point, part, p.betaNorm, p.latentDim);
      point.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
      group.append(point);
    }
    svg.append(group);
    const legendY = margin.top + 10 + index * 18;
    svg.append(svgElement("line", { x1: width - margin.right + 12, x2: width - margin.right + 32, y1: legendY,
                                    y2: legendY, stroke: colour, "stroke-width": 2 }),
               svgElement("text", { x: width - margin.right + 38, y: legendY + 4, class: "legend" }, `M = ${s.latentDim}`));
  });
  return svg;
}

// Viridis at a few stops, interpolated: t in [0, 1] → CSS colour, and whether the text on it is dark.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colourOf(t) {
  const clamped = Math.min(1, Math.max(0, t));
  const at = clamped * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(at));
  const f = at - i;
  const rgb = VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
  return { css: `rgb(${rgb.join(",")})`, dark: 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 };
}

// Figure 4: a heatmap per metric over β_norm (columns) × latent size (rows), each cell the mean over seeds
// of the metric's headline; a part without factors gets the held-out loss instead, so every setting opens.
function drawHeatmaps(part) {
  const figure = element("figure", { class: "fig4", "data-target": "grid" });
  const metrics = Object.entries(part.metrics);
  const caption = metrics.length
    ? "each metric's headline over β_norm × latent size, mean over seeds (colour 0 … 1)"
    : "held-out loss over β_norm × latent size, mean over seeds (no factors, so no metric; lower is darker)";
  figure.append(element("figcaption", {}, [element("strong", { text: "Figure 4 · " }), caption,
    ". † marks settings with a run that did not train (hover for why). Click a cell to open its runs."]));
  const maps = element("div", { class: "heatmaps" });
  if (metrics.length) {
    for (const [metric, column] of metrics) maps.append(heatmap(part, metric, column, null));
  } else {
    const means = part.beta_norms.flatMap((b) => part.latent_dims.map((m) =>
      mean(gridRows(part, b, m).map((row) => row["test.loss"])))).filter((v) => v !== null);
    maps.append(heatmap(part, "held-out loss", "test.loss", [Math.min(...means), Math.max(...means)]));
  }
  figure.append(maps);
  return figure;
}

function heatmap(part, metric, column, range) {
  const box = element("div", { class: "heatmap", "data-metric": metric });
  box.append(element("h4", { text: metric }));
  const grid = element("div", { class: "heatmap-grid",
                                style: `grid-template-columns: auto repeat(${part.beta_norms.length}, minmax(52px, 1fr))` });
  grid.append(element("span", { class: "corner", text: "M \\ β_norm" }));
  for (const b of part.beta_norms) grid.append(element("span", { class: "col-head", text: formatNumber(b) }));
  for (const latentDim of part.latent_dims) {
    grid.append(element("span", { class: "row-head", text: `M ${latentDim}` }));
    for (const betaNorm of part.beta_norms) {
      const rows = gridRows(part, betaNorm, latentDim);
      const value = mean(rows.map((row) => row[column]));
      const untrained = rows.filter((row) => row.trained === false);
      let shown = "–";
      let style;
      if (value !== null) {
        const t = range ? (range[1] > range[0] ? (value - range[0]) / (range[1] - range[0]) : 0.5) : value;
        const colour = colourOf(t);
        style = `background:${colour.css};color:${colour.dark ? "#111" : "#fff"}`;
        shown = range ? formatNumber(value) : value.toFixed(2);
      }
      const why = untrained.map((row) => `${row.run}: did not train (${row.trained_why})`).join("\n");
      const cell = element("button", {
        type: "button", class: "cell" + (untrained.length ? " untrained" : "") + (rows.length ? "" : " empty"),
        style, "data-beta-norm": String(betaNorm), "data-latent-dim": String(latentDim),
        "data-metric": metric, "data-value": value === null ? "" : String(value), "data-seeds": String(rows.length),
        title: `${metric} at β_norm ${formatNumber(betaNorm)}, M ${latentDim}: ${shown} over ${rows.length} seed` +
               `${rows.length === 1 ? "" : "s"}` + (why ? `\n${why}` : ""),
      }, [element("span", { class: "value", text: shown })]);
      if (untrained.length) cell.append(element("span", { class: "dagger", text: "†" }));
      cell.addEventListener("click", () => openSetting(part, betaNorm, latentDim));
      prefetchOnHover(cell, part, betaNorm, latentDim);
      grid.append(cell);
    }
  }
  box.append(grid);
  return box;
}

function drawBaselines(part) {
  const section = element("section", { class: "baselines", "data-target": "baselines" });
  section.append(element("h3", { text: "Baselines" }));
  if (!part.baselines.length) {
    section.append(element("p", { class: "muted", text: "No baselines table for this part (no factors to score)." }));
    return section;
  }
  const metrics = [...new Set([...Object.keys(part.metrics), ...part.baselines.flatMap((row) => Object.keys(row.scores))])];
  const table = element("table", { class: "baselines-table" });
  table.append(element("thead", {}, [element("tr", {}, [
    element("th", { text: "representation" }), element("th", { text: "paper" }),
    ...metrics.map((metric) => element("th", { text: `${metric} (mean ± std, n)` }))])]));
  const body = element("tbody");
  for (const row of part.baselines) {
    const cells = metrics.map((metric) => {
      const samples = (row.scores[metric] || []).filter((v) => v !== null);
      if (!samples.length) return element("td", { class: "num", text: "–" });
      const spread = std(samples);
      return element("td", { class: "num", text: `${formatNumber(mean(samples))}` +
        (spread === null ? "" : ` ± ${formatNumber(spread)}`) + ` (n = ${samples.length})` });
    });
    const clickable = row.runs.length > 0 && row.sweep;
    const tr = element("tr", { class: "baseline" + (clickable ? " opens" : ""), "data-name": row.name,
                               "data-sweep": row.sweep, title: clickable ? `open ${row.sweep}: ${row.runs.join(", ")}` : null,
                               tabindex: clickable ? "0" : null },
                       [element("td", { text: row.label }), element("td", { text: row.paper ?? "–" }), ...cells]);
    if (clickable) {
      const open = () => {
        const at = performance.now();
        const rows = (part.sweeps[row.sweep] || []).filter((r) => row.runs.includes(r.run));
        if (rows.length) openRuns(part.folder, row.sweep, rows, at);
      };
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    }
    body.append(tr);
  }
  table.append(body);
  section.append(element("div", { class: "table-wrap" }, [table]));
  return section;
}

// Every sweep but the grid (whose runs the figures open): a chip per run, and a button opening them all.
function drawSweeps(part) {
  const section = element("section", { class: "sweeps" });
  section.append(element("h3", { text: "Other runs" }));
  for (const [sweep, rows] of Object.entries(part.sweeps)) {
    if (sweep === "grid" || !rows.length) continue;
    const about = SWEEP_ABOUT[sweep] || (sweep.startsWith("successors/")
      ? `the successor objective ${sweep.split("/")[1]}` : "");
    const block = element("div", { class: "sweep-runs", "data-sweep": sweep, "data-target": sweep });
    const all = element("button", { type: "button", class: "open-all", text: `open all ${rows.length}` });
    all.addEventListener("click", () => openRuns(part.folder, sweep, rows, performance.now()));
    block.append(element("h4", {}, [element("code", { text: sweep }), ` · ${about} `, all]));
    const chips = element("div", { class: "chips" });
    for (const row of rows) {
      const chip = element("button", { type: "button", class: "chip" + (row.trained === false ? " untrained" : ""),
        "data-run": row.run, title: row.trained === false ? `did not train: ${row.trained_why}` : null,
        text: `${row.run} · β ${formatNumber(row.beta)} · M ${row.latent_dim}${row.trained === false ? " †" : ""}` });
      chip.addEventListener("click", () => openRuns(part.folder, sweep, [row], performance.now()));
      chips.append(chip);
    }
    block.append(chips);
    section.append(block);
  }
  return section;
}

// ---------------------------------------------------------------- the explorer

async function warmUp() {
  const started = performance.now();
  await new Promise((resolve) => (window.requestIdleCallback || setTimeout)(resolve, { timeout: 500 }));
  try {
    const bytes = Uint8Array.from(atob(WARM_MODEL), (c) => c.charCodeAt(0));
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    await session.run({ x: new ort.Tensor("float32", new Float32Array([0]), [1]) });
    poster.warmMs = performance.now() - started;
  } catch (error) {
    console.warn("warming ONNX Runtime failed; the first run will start it", error);
  }
}

function loadModel(path) {
  if (!models.has(path)) {
    const loading = (async () => {
      const response = await fetch(path + "model.json");
      if (!response.ok) throw new Error(`${path}model.json: HTTP ${response.status}`);
      const info = await response.json();
      const [session, tests, reconstructions] = await Promise.all([
        ort.InferenceSession.create(path + info.decoder, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }),
        loadStrip(path + info.test_images, info), loadStrip(path + info.reconstructions, info)]);
      return { info, session, tests, reconstructions, queue: Promise.resolve() };
    })();
    models.set(path, loading);
    loading.catch(() => models.delete(path)); // a later click tries again
  }
  return models.get(path);
}

// A PNG of images side by side, cut into one canvas per image.
async function loadStrip(url, info) {
  const image = new Image();
  image.src = url;
  await image.decode();
  const [, height, width] = info.image_shape;
  const pieces = [];
  for (let k = 0; k < info.test_image_count; k += 1) {
    const canvas = element("canvas", { width: String(width), height: String(height), class: "thumb" });
    canvas.getContext("2d").drawImage(image, k * width, 0, width, height, 0, 0, width, height);
    pieces.push(canvas);
  }
  return pieces;
}

// Open runs (rows of one sweep of one part) in the explorer, one card each, in place of those shown.
async function openRuns(partFolder, sweep, rows, clickedAt) {
  const token = ++openToken;
  const cards = document.getElementById("cards");
  cards.replaceChildren();
  document.getElementById("explorer-hint").hidden = true;
  poster.opened = [];
  const jobs = rows.map((row) => {
    const entry = { run: row.run, part: partFolder, sweep, path: row.model, baseCode: null, order: null,
                    firstRowsPaintedAt: null, traversalPaintedAt: null };
    poster.opened.push(entry);
    const card = element("article", { class: "card", "data-run": row.model });
    card.append(element("h3", { text: row.run }),
                element("p", { class: "muted", text: `${partFolder} / ${sweep}` + (row.trained === false
                  ? ` · did not train: ${row.trained_why}` : "") }),
                element("p", { class: "loading", text: "loading the decoder…" }));
    cards.append(card);
    return { entry, row, card };
  });
  if (window.matchMedia("(max-width: 999px)").matches) {
    document.getElementById("explorer").scrollIntoView({ block: "start", behavior: "instant" });
  }
  // Decoded one run after another: WebAssembly runs one decode at a time, and five seeds decoding side by
  // side would each show its traversal five times later than the first one alone.
  for (const [k, { entry, row, card }] of jobs.entries()) {
    if (token !== openToken) return;
    await openRun(entry, row, card, clickedAt, token, jobs[k + 1] && jobs[k + 1].row.model);
  }
}

// ``next``: the run opened after this one, whose files are fetched while this one decodes.
async function openRun(entry, row, card, clickedAt, token, next) {
  let model;
  try {
    model = await loadModel(row.model);
    entry.loadedAt = performance.now();
    if (next) loadModel(next).catch(() => {}); // its card says so when its turn comes
  } catch (error) {
    const message = `${row.model}: ${error && error.message ? error.message : error}`;
    poster.error = message;
    card.querySelector(".loading").textContent = `could not load: ${message}`;
    card.querySelector(".loading").classList.add("error");
    return;
  }
  if (token !== openToken) return; // another click replaced these cards meanwhile
  const run = buildCard(entry, model, card);
  entry.builtAt = performance.now();
  await paintTraversal(run);
  timingOf(entry, clickedAt);
  await renderLive(run);
}

// From the click: to the run's first rows (the most informative dimensions) and to its whole traversal.
function timingOf(entry, clickedAt) {
  poster.timings.push({ run: entry.path, firstRowsMs: entry.firstRowsPaintedAt - clickedAt,
                        ms: entry.traversalPaintedAt - clickedAt });
}

function buildCard(entry, model, card) {
  const { info } = model;
  const [, height, width] = info.image_shape;
  const latentDim = info.latent_dim;
  const collapsed = new Set(info.collapsed);
  const run = { entry, model, info, z: Float32Array.from(info.codes[0]), base: Float32Array.from(info.codes[0]),
                paints: 0, sliders: [] };
  run.paintTraversal = coalesced(() => decodeTraversal(run));
  run.renderLive = coalesced(() => decodeLive(run));
  entry.baseCode = run.base;
  entry.order = info.order.slice();
  const id = cardCount++;
  card.querySelector(".loading").remove();

  const facts = [["seed", info.seed], ["β", info.beta], ["β_norm", info.beta_norm], ["M", latentDim],
                 ["step", info.step]];
  for (const [name, value] of Object.entries(info.metrics || {})) facts.push([name, value]);
  const list = element("dl", { class: "facts" });
  for (const [name, value] of facts) list.append(element("dt", { text: name }), element("dd", { text: formatNumber(value) }));
  card.append(list);

  // The traversal: a row per dimension (by KL, largest first), a column per value, one canvas.
  const scale = Math.max(1, Math.round(TRAVERSAL_CELL_PX / height));
  const [cellH, cellW, gap] = [height * scale, width * scale, TRAVERSAL_GAP_PX];
  const { low, high, steps } = info.traversal;
  run.values = Array.from({ length: steps }, (_, v) => (steps === 1 ? low : low + (high - low) * v / (steps - 1)));
  const [canvasW, canvasH] = [steps * cellW + (steps - 1) * gap, latentDim * cellH + (latentDim - 1) * gap];
  run.traversal = element("canvas", {
    class: "traversal", width: String(canvasW), height: String(canvasH), style: `max-width:${canvasW}px`,
    "data-run": entry.path, "data-paints": "0",
    "data-scale": String(scale), "data-cell": String(cellH), "data-cell-width": String(cellW), "data-gap": String(gap),
    "data-rows": String(latentDim), "data-columns": String(steps), "data-order": info.order.join(","),
    "aria-label": `traversal of ${info.run}: row i is dimension order[i], column v is value v`,
  });
  // The canvas shrinks to the card's width: labels and greyed rows follow it in proportions.
  const tracks = info.order.map(() => `minmax(0, ${cellH}fr)`).join(` minmax(0, ${gap}fr) `);
  const maxKl = Math.max(...info.kl_per_dim, 1e-9);
  const labels = element("div", { class: "row-labels", style: `grid-template-rows:${tracks}` });
  // As wide as the column allows up to the canvas's own size, so that the greyed rows lie on the canvas.
  const overlay = element("div", { class: "traversal-box", style: `max-width:${canvasW}px` }, [run.traversal]);
  info.order.forEach((j, i) => {
    const kl = info.kl_per_dim[j];
    const isCollapsed = collapsed.has(j);
    labels.append(element("div", { class: "row-label" + (isCollapsed ? " collapsed" : ""), "data-dim": String(j),
                                   style: `grid-row:${2 * i + 1}` }, [
      element("span", { text: `z${j} KL ${formatKl(kl)}` }),
      isCollapsed ? element("span", { class: "tag", text: "collapsed" }) : "",
      element("span", { class: "kl-bar", title: `KL ${kl}` },
              [element("span", { style: `width:${(100 * Math.max(0, kl) / maxKl).toFixed(1)}%` })]),
    ]));
    if (isCollapsed) {
      overlay.append(element("div", { class: "grey", style: `top:${(100 * i * (cellH + gap) / canvasH).toFixed(3)}%;` +
                                                             `height:${(100 * cellH / canvasH).toFixed(3)}%` }));
    }
  });
  const ends = element("div", { class: "ends muted" }, [element("span", { text: `z = ${low}` }),
                                                         element("span", { text: `${high}` })]);
  card.append(element("h4", { text: "Traversals around the base code (rows by KL, bars: KL per dimension)" }),
              element("div", { class: "traversal-wrap" },
                      [element("div", { class: "traversal-grid" }, [labels, overlay, element("span"), ends])]));

  // Held-out images and their reconstructions: a click makes the image's μ the base code.
  const inputs = element("div", { class: "strip" });
  const outputs = element("div", { class: "strip" });
  model.tests.forEach((piece, k) => {
    const copy = cloneCanvas(piece);
    copy.dataset.test = String(k);
    copy.title = `held-out image ${k}: start from its code`;
    copy.setAttribute("aria-pressed", String(k === 0));
    copy.addEventListener("click", () => {
      for (const other of inputs.children) other.setAttribute("aria-pressed", String(other === copy));
      setBase(run, info.codes[k]);
    });
    inputs.append(copy);
    outputs.append(cloneCanvas(model.reconstructions[k]));
  });
  card.append(element("h4", { text: "Held-out images (click one to start from its code) and their reconstructions" }),
              inputs, outputs);

  // The live image and a slider per dimension, this run's own.
  run.live = element("canvas", { class: "live", width: String(width), height: String(height),
                                 "data-run": entry.path, "data-paints": "0" });
  const sliders = element("div", { class: "sliders" });
  for (const j of info.order) {
    const isCollapsed = collapsed.has(j);
    const sliderId = `s-${id}-${j}`;
    const range = element("input", { type: "range", id: sliderId, min: String(-SLIDER_RANGE), max: String(SLIDER_RANGE),
                                      step: "0.01", value: String(clampSlider(run.z[j])), "data-dim": String(j) });
    const value = element("span", { class: "value", text: run.z[j].toFixed(2) });
    range.addEventListener("input", () => {
      const v = Number(range.value);
      value.textContent = v.toFixed(2);
      run.z[j] = v;
      renderLive(run);
    });
    sliders.append(element("div", { class: "slider" + (isCollapsed ? " collapsed" : ""), "data-dim": String(j) }, [
      element("label", { for: sliderId, text: `z${j}` }), range, value,
      element("span", { class: "kl", text: `KL ${formatNumber(info.kl_per_dim[j])}${isCollapsed ? " (collapsed)" : ""}` }),
    ]));
    run.sliders[j] = { range, value };
  }
  card.append(element("h4", { text: "Live: move a slider" }),
              element("div", { class: "live-box" }, [element("div", { class: "live-frame" }, [run.live]), sliders]));
  return run;
}

function cloneCanvas(source) {
  const copy = element("canvas", { width: String(source.width), height: String(source.height), class: "thumb" });
  copy.getContext("2d").drawImage(source, 0, 0);
  return copy;
}

function clampSlider(v) {
  return Math.min(SLIDER_RANGE, Math.max(-SLIDER_RANGE, v));
}

function setBase(run, code) {
  run.base.set(code);
  run.z.set(code);
  for (let j = 0; j < code.length; j += 1) {
    run.sliders[j].range.value = String(clampSlider(code[j]));
    run.sliders[j].value.textContent = Number(code[j]).toFixed(2);
  }
  paintTraversal(run);
  renderLive(run);
}

// Every traversal code in one batch: row i·steps + v is the base code with dimension order[i] set to value v.
function paintTraversal(run) {
  return run.paintTraversal();
}

async function decodeTraversal(run) {
  const { info } = run;
  const latentDim = info.latent_dim;
  const steps = run.values.length;
  const codes = new Float32Array(latentDim * steps * latentDim);
  info.order.forEach((j, i) => {
    for (let v = 0; v < steps; v += 1) {
      const offset = (i * steps + v) * latentDim;
      codes.set(run.base, offset);
      codes[offset + j] = run.values[v];
    }
  });
  // A few rows at a time, the most informative first: they show before the whole grid is decoded.
  for (let first = 0; first < latentDim; first += TRAVERSAL_CHUNK_ROWS) {
    const last = Math.min(latentDim, first + TRAVERSAL_CHUNK_ROWS);
    const chunk = codes.subarray(first * steps * latentDim, last * steps * latentDim);
    const output = await decode(run.model, chunk, (last - first) * steps);
    drawTraversal(run, output.image.data, first, last);
    run.entry.firstRowsPaintedAt ??= performance.now();
  }
  run.paints += 1;
  run.traversal.dataset.paints = String(run.paints);
  run.entry.traversalPaintedAt = performance.now();
}

// One decode at a time per session (the traversal and the live image share it): ONNX Runtime Web
// refuses a run while another of the same session is in flight.
function decode(model, codes, batch) {
  const result = model.queue.then(() =>
    model.session.run({ z: new ort.Tensor("float32", codes, [batch, codes.length / batch]) }));
  model.queue = result.catch(() => {});
  return result;
}

// Rows first … last − 1 of the traversal from their decoded pixels (row first's images first).
function drawTraversal(run, pixels, first, last) {
  const canvas = run.traversal;
  const [channels, height, width] = run.info.image_shape;
  const scale = Number(canvas.dataset.scale);
  const gap = Number(canvas.dataset.gap);
  const [cellH, cellW] = [height * scale, width * scale];
  const context = canvas.getContext("2d");
  const bandTop = first * (cellH + gap);
  const bandHeight = Math.min(canvas.height, last * (cellH + gap)) - bandTop;
  const image = context.createImageData(canvas.width, bandHeight);
  image.data.fill(255);
  const area = height * width;
  const steps = run.values.length;
  for (let i = first; i < last; i += 1) {
    for (let v = 0; v < steps; v += 1) {
      const base = ((i - first) * steps + v) * channels * area;
      const [left, top] = [v * (cellW + gap), i * (cellH + gap) - bandTop];
      for (let y = 0; y < height; y += 1) {
        for (let x = 0; x < width; x += 1) {
          const p = y * width + x;
          const rgb = [0, 1, 2].map((c) => toByte(pixels[base + (channels === 1 ? 0 : c) * area + p]));
          for (let dy = 0; dy < scale; dy += 1) {
            let at = 4 * ((top + y * scale + dy) * canvas.width + left + x * scale);
            for (let dx = 0; dx < scale; dx += 1, at += 4) {
              image.data[at] = rgb[0]; image.data[at + 1] = rgb[1]; image.data[at + 2] = rgb[2];
            }
          }
        }
      }
    }
  }
  context.putImageData(image, 0, bandTop);
}


// Decode run.z into the live image (run.renderLive: moves that arrive while a decode runs are merged into
// one more decode of the latest code, common.js's coalesced).
function renderLive(run) {
  return run.renderLive();
}

async function decodeLive(run) {
  const [channels, height, width] = run.info.image_shape;
  const output = await decode(run.model, Float32Array.from(run.z), 1);
  paint(run.live, output.image.data, channels, height, width);
  run.live.dataset.paints = String(Number(run.live.dataset.paints) + 1);
}
