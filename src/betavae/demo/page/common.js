// What the demo page (demo.js) and the study's poster (poster.js) share: the status line, building
// elements, numbers as the pages print them, decoded pixels painted, and decodes that keep up with input. Loaded before either script, as a classic script:
// its functions are globals of the page.
"use strict";

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// <tag attributes…>children</tag>; the attribute "text" is the text content, and a null or undefined
// value leaves its attribute out.
function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// Three significant digits, exponents outside 0.01 … 10⁴; "–" for a value not measured (null in the
// page's JSON, which is how a NaN is written).
function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number" || !isFinite(value)) return String(value);
  const size = Math.abs(value);
  return size !== 0 && (size < 1e-2 || size >= 1e4) ? value.toExponential(2) : String(+value.toPrecision(3));
}

// A decoded value in [0, 1] (clamped) as a byte of a canvas pixel.
function toByte(value) {
  return Math.round(255 * Math.min(1, Math.max(0, value)));
}

// Decoded pixels (C×H×W floats in [0, 1], grey or RGB) onto a canvas of the image's own size.
function paint(canvas, pixels, channels, height, width) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const area = height * width;
  for (let p = 0; p < area; p += 1) {
    for (let c = 0; c < 3; c += 1) image.data[4 * p + c] = toByte(pixels[(channels === 1 ? 0 : c) * area + p]);
    image.data[4 * p + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

// ``work`` (async, reading the latest state when it starts) made safe to call at any rate: a call while it
// runs asks for one more run once it ends, so a burst of slider moves becomes one more decode of the latest
// code, and the image never lags behind the input.
function coalesced(work) {
  let busy = false;
  let again = false;
  return async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        await work();
      } while (again);
    } finally {
      busy = false;
    }
  };
}
