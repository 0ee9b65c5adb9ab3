// What the demo page (demo.js) and the study's poster (poster.js) share: the status line, building
// elements, and numbers as the pages print them. Loaded before either script, as a classic script:
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
