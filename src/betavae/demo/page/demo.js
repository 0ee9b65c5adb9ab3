// betavae latent explorer: trained β-VAE decoders and encoders run in the browser with
// ONNX Runtime Web (WebAssembly). demo.json (written by `betavae demo`) lists the runs; each
// run folder holds encoder.onnx (image → mu, logvar), decoder.onnx (z → image in [0, 1]),
// model.json (β, β_norm, M, each dimension's KL, metrics) and test_images.png (held-out
// images side by side). Runs with the same latent size share one set of sliders.
"use strict";

const RANGE = 3;                 // sliders span −3 … 3 (the prior's ±3σ)
const ANIMATION_PERIOD_MS = 3000; // one traversal −3 → 3 → −3
const DRAW_SIZE = 28;             // MNIST's image side
const DRAW_BOX = 20;              // MNIST centres each digit's 20×20 box by its centre of mass

// What tests and curious users read: window.betavaeDemo.
const demo = { groups: [], timings: [], loadMs: null, error: null };
window.betavaeDemo = demo;
demo.ready = main().catch((error) => {
  demo.error = String(error && error.message ? error.message : error);
  setStatus(`Could not start the demo: ${demo.error}`, true);
  throw error;
});

async function main() {
  const started = performance.now();
  if (location.protocol === "file:") {
    throw new Error("browsers run WebAssembly and fetch files only over HTTP, not from file://; serve this " +
                    "folder, e.g. python -m http.server --directory THIS_FOLDER, and open http://127.0.0.1:8000/");
  }
  if (typeof ort === "undefined") throw new Error("ONNX Runtime Web (ort/ort.wasm.min.js) did not load");
  const response = await fetch("demo.json");
  if (!response.ok) throw new Error(`demo.json: HTTP ${response.status}`);
  const manifest = await response.json();
  if (manifest.format !== 1) throw new Error(`demo.json has format ${manifest.format}; this page reads format 1`);
  ort.env.wasm.wasmPaths = new URL(manifest.ort, document.baseURI).href; // the module loader needs it absolute
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static host lacks
  const runs = [];
  for (const entry of manifest.runs) runs.push(await loadRun(entry));
  for (const [latentDim, members] of groupByLatentSize(runs)) {
    demo.groups.push(buildGroup(demo.groups.length, latentDim, members, manifest.active_kl));
  }
  await Promise.all(demo.groups.flatMap((group) => group.runs.map((run) => render(run))));
  demo.loadMs = performance.now() - started;
  setStatus(`${runs.length} model${runs.length === 1 ? "" : "s"} loaded in ${Math.round(demo.loadMs)} ms. ` +
            "Move a slider, draw a random code, or pick a test image.");
}

async function loadRun(entry) {
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const [encoder, decoder, tests] = await Promise.all([
    ort.InferenceSession.create(entry.path + entry.encoder, options),
    ort.InferenceSession.create(entry.path + entry.decoder, options),
    loadTestImages(entry),
  ]);
  const run = { info: entry, encoder, decoder, tests, z: new Float32Array(entry.latent_dim), inputAt: null,
                paints: 0 };
  run.render = coalesced(() => decodeAndPaint(run));
  return run;
}

// The held-out images: one PNG strip, cut into count images of C×H×W floats in [0, 1].
async function loadTestImages(entry) {
  const image = new Image();
  image.src = entry.path + entry.test_images;
  await image.decode();
  const [channels, height, width] = entry.image_shape;
  const canvas = element("canvas", { width: image.width, height: image.height });
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const images = [];
  for (let k = 0; k < entry.test_image_count; k += 1) {
    const rgba = context.getImageData(k * width, 0, width, height).data;
    images.push(fromRgba(rgba, channels, height, width));
  }
  return images;
}

function fromRgba(rgba, channels, height, width) {
  const pixels = new Float32Array(channels * height * width);
  const area = height * width;
  for (let p = 0; p < area; p += 1) {
    for (let c = 0; c < channels; c += 1) pixels[c * area + p] = rgba[4 * p + c] / 255;
  }
  return pixels;
}

function groupByLatentSize(runs) {
  const groups = new Map();
  for (const run of runs) {
    if (!groups.has(run.info.latent_dim)) groups.set(run.info.latent_dim, []);
    groups.get(run.info.latent_dim).push(run);
  }
  return groups;
}

// Decode run.z and repaint its canvas (run.render: moves that arrive while a decode runs are merged into
// one more decode of the latest code, common.js's coalesced).
function render(run) {
  return run.render();
}

async function decodeAndPaint(run) {
  const since = run.inputAt;
  run.inputAt = null;
  const [channels, height, width] = run.info.image_shape;
  const z = new ort.Tensor("float32", Float32Array.from(run.z), [1, run.z.length]);
  const output = await run.decoder.run({ z });
  paint(run.canvas, output.image.data, channels, height, width);
  run.paints += 1;
  run.canvas.dataset.paints = String(run.paints);
  if (since !== null) demo.timings.push({ run: run.info.run, arch: run.info.arch, ms: performance.now() - since });
}

function buildGroup(index, latentDim, runs, activeKl) {
  const lead = runs[0];
  const group = { index, latentDim, runs, sliders: [], selected: 0, animation: null };
  const meanKl = Array.from({ length: latentDim }, (_, j) =>
    runs.reduce((sum, run) => sum + run.info.kl_per_dim[j], 0) / runs.length);
  const order = meanKl.map((_, j) => j).sort((a, b) => meanKl[b] - meanKl[a]);
  group.selected = order[0];

  const section = element("section", { class: "group", "data-group": String(index) });
  section.append(element("h2", { text: `Latent size M = ${latentDim}` +
    (runs.length > 1 ? ` · ${runs.length} runs driven by the same sliders` : "") }));

  const controls = element("div", { class: "controls" });
  const animate = element("button", { type: "button", "data-action": "animate", "aria-pressed": "false" });
  const buttons = element("div", { class: "buttons" }, [
    button("Random draw", "random", () => setCode(group, randomNormal(latentDim))),
    button("Reset", "reset", () => setCode(group, new Float32Array(latentDim))),
    animate,
  ]);
  animate.addEventListener("click", () => toggleAnimation(group, animate));
  group.animateButton = animate;
  controls.append(buttons);
  for (const j of order) controls.append(buildSlider(group, j, activeKl));
  updateAnimateLabel(group);

  const [, height, width] = lead.info.image_shape;
  const shown = element("canvas", { class: "image input", width: String(width), height: String(height) });
  const cards = element("div", { class: "runs" }, [element("div", { class: "run input-card" }, [
    element("h3", { text: "Input" }), shown,
    element("p", { class: "hint", text: "Pick a held-out image" +
      (hasDrawPad(group) ? " or draw a digit" : "") + ": each run's canvas then shows its reconstruction." }),
  ])]);
  for (const run of runs) cards.append(buildRunCard(run));

  section.append(controls, cards, buildInputs(group, lead, shown));
  document.getElementById("groups").append(section);
  return group;
}

function button(label, action, onClick) {
  const node = element("button", { type: "button", "data-action": action, text: label });
  node.addEventListener("click", onClick);
  return node;
}

function buildSlider(group, j, activeKl) {
  const kls = group.runs.map((run) => run.info.kl_per_dim[j]);
  const collapsed = kls.every((kl) => kl <= activeKl);
  const row = element("div", { class: "slider" + (collapsed ? " collapsed" : ""), "data-dim": String(j) });
  const pick = element("input", { type: "radio", name: `selected-${group.index}`, value: String(j),
                                   "aria-label": `animate z${j}` });
  pick.checked = j === group.selected;
  pick.addEventListener("change", () => { group.selected = j; updateAnimateLabel(group); });
  const id = `z-${group.index}-${j}`;
  const range = element("input", { type: "range", id, min: String(-RANGE), max: String(RANGE), step: "0.01",
                                    value: "0" });
  const value = element("span", { class: "value", text: "0.00" });
  range.addEventListener("input", () => {
    const at = performance.now();
    const v = Number(range.value);
    value.textContent = v.toFixed(2);
    for (const run of group.runs) { run.z[j] = v; run.inputAt ??= at; render(run); }
  });
  const kl = kls.map(formatNumber).join(" · ");
  row.append(pick, element("label", { for: id, text: `z${j}` }), range, value,
             element("span", { class: "kl", text: `KL ${kl}${collapsed ? " (collapsed)" : ""}` }));
  group.sliders[j] = { range, value };
  return row;
}

function buildRunCard(run) {
  const info = run.info;
  const [, height, width] = info.image_shape;
  run.canvas = element("canvas", { class: "image decoded", width: String(width), height: String(height),
                                   "data-run": info.run, "data-paints": "0" });
  const facts = [["β", info.beta], ["β_norm", info.beta_norm], ["M", info.latent_dim], ["data", info.dataset],
                 ["arch", info.arch], ["objective", info.objective], ["step", info.step]];
  for (const [name, metric] of Object.entries(info.metrics || {})) facts.push([name, metric]);
  const list = element("dl");
  for (const [name, value] of facts) list.append(element("dt", { text: name }), element("dd", { text: formatNumber(value) }));
  return element("div", { class: "run" }, [element("h3", { text: info.run }), run.canvas, list]);
}

function setCode(group, code) {
  const at = performance.now();
  for (let j = 0; j < code.length; j += 1) showSlider(group, j, code[j]);
  for (const run of group.runs) { run.z.set(code); run.inputAt ??= at; render(run); }
}

function showSlider(group, j, v) {
  group.sliders[j].range.value = String(v);
  group.sliders[j].value.textContent = Number(v).toFixed(2);
}

function randomNormal(size) {
  const values = new Float32Array(size);
  for (let j = 0; j < size; j += 1) { // Box–Muller
    const u = 1 - Math.random();
    values[j] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }
  return values;
}

function updateAnimateLabel(group) {
  if (!group.animation) group.animateButton.textContent = `Animate z${group.selected}`;
}

// A traversal of the chosen dimension, −3 → 3 → −3, the other dimensions held.
function toggleAnimation(group, animate) {
  if (group.animation) {
    cancelAnimationFrame(group.animation);
    group.animation = null;
    animate.setAttribute("aria-pressed", "false");
    updateAnimateLabel(group);
    return;
  }
  const j = group.selected;
  const started = performance.now();
  animate.setAttribute("aria-pressed", "true");
  animate.textContent = `Stop z${j}`;
  const frame = (now) => {
    const phase = ((now - started) % ANIMATION_PERIOD_MS) / ANIMATION_PERIOD_MS;
    const v = -RANGE + 2 * RANGE * (phase < 0.5 ? 2 * phase : 2 - 2 * phase);
    showSlider(group, j, v);
    for (const run of group.runs) { run.z[j] = v; run.inputAt ??= now; render(run); }
    group.animation = requestAnimationFrame(frame);
  };
  group.animation = requestAnimationFrame(frame);
}

function hasDrawPad(group) {
  const [channels, height, width] = group.runs[0].info.image_shape;
  return group.runs.some((run) => run.info.dataset === "mnist") && channels === 1 &&
    height === DRAW_SIZE && width === DRAW_SIZE;
}

function buildInputs(group, lead, shown) {
  const inputs = element("div", { class: "inputs" });
  const [channels, height, width] = lead.info.image_shape;
  if (hasDrawPad(group)) inputs.append(buildDrawPad(group, shown));
  const strip = element("div", { class: "tests" });
  lead.tests.forEach((pixels, k) => {
    const thumb = element("canvas", { width: String(width), height: String(height), "data-test": String(k),
                                      "aria-pressed": "false", title: `held-out image ${k}` });
    paint(thumb, pixels, channels, height, width);
    thumb.addEventListener("click", () => {
      for (const other of strip.children) other.setAttribute("aria-pressed", String(other === thumb));
      encode(group, pixels, shown);
    });
    strip.append(thumb);
  });
  inputs.append(element("div", {}, [element("h4", { text: "Pick a held-out test image" }), strip]));
  return inputs;
}

// Encode an image with every run of the group whose image shape matches: each run's code
// becomes its μ (so its canvas shows the reconstruction), and the sliders show the first run's μ.
async function encode(group, pixels, shown) {
  const lead = group.runs[0];
  const [channels, height, width] = lead.info.image_shape;
  paint(shown, pixels, channels, height, width);
  const at = performance.now();
  for (const run of group.runs) {
    if (run.info.image_shape.join() !== lead.info.image_shape.join()) continue;
    const image = new ort.Tensor("float32", pixels, [1, channels, height, width]);
    const output = await run.encoder.run({ image });
    run.z.set(output.mu.data);
    run.inputAt ??= at;
    render(run);
  }
  for (let j = 0; j < lead.z.length; j += 1) showSlider(group, j, lead.z[j]);
}

function buildDrawPad(group, shown) {
  const side = 196;
  const pad = element("canvas", { width: String(side), height: String(side), class: "pad",
                                  "aria-label": "draw a digit" });
  const context = pad.getContext("2d");
  const clear = () => { context.fillStyle = "black"; context.fillRect(0, 0, side, side); };
  clear();
  context.strokeStyle = "white";
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = side / 12;
  let drawing = false;
  let pending = false;
  const point = (event) => {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * side / box.width, (event.clientY - box.top) * side / box.height];
  };
  const update = () => { // at most one encoding per frame while the pen moves
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; encode(group, mnistLike(pad), shown); });
  };
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    pad.setPointerCapture(event.pointerId);
    const [x, y] = point(event);
    context.beginPath();
    context.moveTo(x, y);
    context.lineTo(x + 0.01, y);
    context.stroke();
    update();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = point(event);
    context.lineTo(x, y);
    context.stroke();
    update();
  });
  const stop = () => { drawing = false; };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  const clearButton = button("Clear", "clear", () => { clear(); update(); });
  return element("div", { class: "draw" }, [element("h4", { text: "Draw a digit" }), pad, clearButton]);
}

// The drawing as MNIST prepares its digits: the strokes' bounding box scaled into 20×20,
// placed in 28×28 with its centre of mass at the centre.
function mnistLike(pad) {
  const context = pad.getContext("2d");
  const { width, height } = pad;
  const data = context.getImageData(0, 0, width, height).data;
  let [left, top, right, bottom] = [width, height, -1, -1];
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (data[4 * (y * width + x)] > 0) {
        left = Math.min(left, x); right = Math.max(right, x);
        top = Math.min(top, y); bottom = Math.max(bottom, y);
      }
    }
  }
  const pixels = new Float32Array(DRAW_SIZE * DRAW_SIZE);
  if (right < 0) return pixels;
  const boxWidth = right - left + 1;
  const boxHeight = bottom - top + 1;
  const scale = DRAW_BOX / Math.max(boxWidth, boxHeight);
  const small = element("canvas", { width: String(DRAW_SIZE), height: String(DRAW_SIZE) });
  const smallContext = small.getContext("2d");
  smallContext.imageSmoothingQuality = "high";
  smallContext.drawImage(pad, left, top, boxWidth, boxHeight, 0, 0, boxWidth * scale, boxHeight * scale);
  const boxed = smallContext.getImageData(0, 0, DRAW_SIZE, DRAW_SIZE).data;
  let [mass, sumX, sumY] = [0, 0, 0];
  for (let y = 0; y < DRAW_SIZE; y += 1) {
    for (let x = 0; x < DRAW_SIZE; x += 1) {
      const v = boxed[4 * (y * DRAW_SIZE + x)] / 255;
      mass += v; sumX += v * x; sumY += v * y;
    }
  }
  const shiftX = Math.round(DRAW_SIZE / 2 - 0.5 - sumX / mass);
  const shiftY = Math.round(DRAW_SIZE / 2 - 0.5 - sumY / mass);
  for (let y = 0; y < DRAW_SIZE; y += 1) {
    for (let x = 0; x < DRAW_SIZE; x += 1) {
      const [fromX, fromY] = [x - shiftX, y - shiftY];
      if (fromX >= 0 && fromX < DRAW_SIZE && fromY >= 0 && fromY < DRAW_SIZE) {
        pixels[y * DRAW_SIZE + x] = boxed[4 * (fromY * DRAW_SIZE + fromX)] / 255;
      }
    }
  }
  return pixels;
}
