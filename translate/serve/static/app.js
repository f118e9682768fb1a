// The web page of translate serve: pick a model, upload or drop an image, see both images, and
// compare them at one display scale (a before/after slider with zoom: what super-resolution
// gained); generating models have their own panels (sample.js, drag.js). Plain JS, no dependencies; talks to the same API as any client (/v1/models,
// .../translate), with the API key (asked for when the server answers 401) as a bearer token.
"use strict";

const $ = (id) => document.getElementById(id);
const models = new Map();
let file = null;
let outputUrl = null;
let inputUrl = null;

function authHeaders() {
  const key = sessionStorage.getItem("translate-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(url, options = {}) {
  const res = await fetch(url, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  if (res.status === 401) {
    $("key-form").hidden = false;
    throw new Error("this server needs an API key: enter it above");
  }
  return res;
}

// The error of a refused request: "STATUS: the server's one-line message".
async function failure(res) {
  let message = res.statusText;
  try {
    message = (await res.json()).error || message;
  } catch (_) { /* not JSON */ }
  return new Error(`${res.status}: ${message}`);
}

// Show an image answer in img (the previous object URL, if any, freed); its new object URL.
async function display(img, blob, previous) {
  if (previous) URL.revokeObjectURL(previous);
  const url = URL.createObjectURL(blob);
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error("the result is not a displayable image"));
    img.src = url;
  });
  return url;
}

function setStatus(text, state) {
  $("status").textContent = text;
  $("status").className = state === "error" ? "error" : "";
  document.body.dataset.state = state;
}

function renderOptions() {
  const model = models.get($("model").value);
  const box = $("options");
  box.replaceChildren();
  if (!model) return;
  for (const opt of model.options) {
    if (!opt.choices) continue; // free-form options are for API clients
    const label = document.createElement("label");
    label.title = opt.help;
    label.append(opt.name.replaceAll("_", " ") + " ");
    const select = document.createElement("select");
    select.name = opt.name;
    select.dataset.option = "1";
    for (const choice of opt.choices) {
      const o = document.createElement("option");
      o.value = String(choice);
      o.textContent = String(choice);
      if (String(choice) === String(model.defaults[opt.name] ?? opt.default)) o.selected = true;
      select.append(o);
    }
    label.append(select);
    box.append(label);
  }
  if (model.code) { // many answers per input: K samples by a seed, or a style image's code
    const samples = document.createElement("label");
    samples.title = `K outputs with random ${model.code.name} codes, side by side`;
    samples.innerHTML = 'samples <input id="samples" type="number" min="1" max="8" value="4">';
    const seed = document.createElement("label");
    seed.title = "same seed, same samples (empty: random)";
    seed.innerHTML = 'seed <input id="seed" type="number" min="0" step="1">';
    box.append(samples, seed);
    if (model.code.style_image) {
      const style = document.createElement("label");
      style.title = "translate in the style of this image (one output)";
      style.innerHTML = 'style image <input id="style" type="file" accept="image/*">';
      box.append(style);
    }
  }
  const lim = model.limits;
  $("model-info").textContent =
    `${model.plugin} on ${model.backend} (${model.device}), scale ${model.scale}; ` +
    `up to ${(lim.max_upload_bytes / 1048576).toFixed(1)} MB and ` +
    `${lim.max_input_pixels.toLocaleString()} pixels; ${lim.input_formats.join(", ")}`;
}

async function loadModels() {
  try {
    const res = await api("/v1/models");
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    $("model").replaceChildren();
    for (const m of body.models) {
      models.set(m.name, m);
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = `${m.name} (${m.plugin}${m.scale > 1 ? ", x" + m.scale : ""})`;
      $("model").append(o);
    }
    renderOptions();
    document.dispatchEvent(new CustomEvent("models", { detail: body })); // sample.js, drag.js
    const translating = body.models.length > 0; // else only generators: their panels below
    for (const id of ["form", "drop", "panes"]) $(id).hidden = !translating;
    $("submit").disabled = !translating;
    setStatus(file || !translating ? "" : "Choose an image.", "idle");
  } catch (err) {
    setStatus(`Could not list models: ${err.message}`, "error");
  }
}

function pick(chosen) {
  if (!chosen) return;
  file = chosen;
  if (inputUrl) URL.revokeObjectURL(inputUrl);
  inputUrl = URL.createObjectURL(file);
  const input = $("input");
  input.onload = () => {
    $("input-size").textContent = `${input.naturalWidth}x${input.naturalHeight}`;
  };
  input.src = inputUrl;
  translate();
}

async function translate() {
  const model = models.get($("model").value);
  if (!file || !model) return;
  if (file.size > model.limits.max_upload_bytes) {
    setStatus(`${file.name}: larger than ${model.limits.max_upload_bytes} bytes`, "error");
    return;
  }
  const params = new URLSearchParams({ format: $("format").value });
  for (const select of document.querySelectorAll("#options select")) {
    params.set(select.name, select.value);
  }
  let request = {
    method: "POST",
    body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" },
  };
  const style = $("style") && $("style").files[0];
  if (style) { // the image and the reference as multipart fields 'image' and 'style'
    const form = new FormData();
    form.append("image", file);
    form.append("style", style);
    request = { method: "POST", body: form };
  } else if ($("samples")) {
    params.set("samples", $("samples").value || "1");
    if ($("seed").value !== "") params.set("seed", $("seed").value);
  }
  setStatus(`Translating ${file.name} with ${model.name}...`, "busy");
  $("submit").disabled = true;
  try {
    const res = await api(
      `/v1/models/${encodeURIComponent(model.name)}/translate?${params}`,
      request,
    );
    if (!res.ok) throw await failure(res);
    const output = $("output");
    outputUrl = await display(output, await res.blob(), outputUrl);
    $("output-size").textContent = `${output.naturalWidth}x${output.naturalHeight}`;
    const ext = $("format").value === "jpeg" ? "jpg" : $("format").value;
    const stem = file.name.replace(/\.[^.]*$/, "") || "image";
    const link = $("download");
    link.href = outputUrl;
    link.download = `${stem}-${model.name}.${ext}`;
    link.hidden = false;
    const ms = res.headers.get("X-Processing-Time-Ms");
    const input = $("input");
    await input.decode().catch(() => {});
    const sizes = `${input.naturalWidth}x${input.naturalHeight} -> ` +
      `${output.naturalWidth}x${output.naturalHeight}`;
    const k = Number(res.headers.get("X-Samples") || "1");
    setStatus(`Done: ${res.headers.get("X-Model")} in ${ms} ms (${sizes}` +
      `${k > 1 ? `: ${k} samples side by side` : ""}).`, "done");
    if (k > 1) $("compare").hidden = true; // the K outputs are in the output pane
    else showCompare(model, sizes, ms);
  } catch (err) {
    setStatus(`Failed: ${err.message}`, "error");
  } finally {
    $("submit").disabled = false;
  }
}

// Before/after at the output's scale: the input is stretched to the output's size with
// nearest-neighbour sampling (its own pixels, enlarged), the output is drawn over it right of
// the slider.
function showCompare(model, sizes, ms) {
  $("before").src = inputUrl;
  $("after").src = outputUrl;
  const scale = model.scale > 1 ? `, x${model.scale}` : "";
  $("compare-info").textContent = `${sizes}${scale}; ${ms} ms`;
  $("compare").hidden = false;
  applyZoom();
}

function applyZoom() {
  const output = $("output");
  const w = output.naturalWidth;
  const h = output.naturalHeight;
  const stage = $("stage");
  const zoom = $("zoom").value;
  if (zoom === "fit") {
    stage.style.width = "100%";
    stage.style.height = "auto";
    stage.style.aspectRatio = `${w} / ${h}`;
  } else {
    stage.style.width = `${w * Number(zoom)}px`;
    stage.style.height = `${h * Number(zoom)}px`;
    stage.style.aspectRatio = "";
  }
}

$("split").addEventListener("input", () => {
  $("stage").style.setProperty("--split", `${$("split").value}%`);
});
$("zoom").addEventListener("change", applyZoom);
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("translate-api-key", $("key").value);
  $("key-form").hidden = true;
  setStatus("Loading models...", "loading");
  loadModels();
});
$("model").addEventListener("change", renderOptions);
$("file").addEventListener("change", (e) => pick(e.target.files[0]));
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (file) translate();
  else setStatus("Choose an image first.", "error");
});
const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  pick(e.dataTransfer.files[0]);
});
setStatus("Loading models...", "loading");
loadModels();
