// The page's DragGAN panel, for the served style generators (stylegan2): sample an image of a
// seed, click handle/target pairs on it (and optionally paint a mask), press Drag and watch the
// image and the points move as the optimisation runs. It reads the newline-delimited JSON that
// POST /v1/models/{name}/drag streams (one line per step); Stop closes the connection, which
// cancels the drag on the server. Uses app.js's $, api (the API key) and failure.
"use strict";

(() => {
  const state = {
    model: null, // the generator's entry in GET /v1/models
    latent: null, // w+ of the image shown (base64 float32), where the next drag starts
    handles: [],
    targets: [],
    pending: null, // a handle clicked, waiting for its target
    mask: null, // a canvas of the image's size: white where the image may change
    frames: 0, // step images drawn while the last drag ran
    controller: null,
  };
  window.dragState = state; // read by the browser test

  function status(text, phase) {
    $("drag-status").textContent = text;
    $("drag-status").className = phase === "error" ? "error" : "";
    document.body.dataset.drag = phase;
  }

  function busy(running) {
    $("drag-run").disabled = running || !state.latent;
    $("drag-sample").disabled = running;
    $("drag-stop").disabled = !running;
  }

  function setup(body) {
    const editable = (body.generators || []).filter((g) => g.drag);
    $("drag-panel").hidden = editable.length === 0;
    if (!editable.length) return;
    $("drag-model").replaceChildren();
    for (const g of editable) {
      const o = document.createElement("option");
      o.value = g.name;
      o.textContent = `${g.name} (${g.plugin}, ${g.drag.resolution}px)`;
      o.dataset.entry = JSON.stringify(g);
      $("drag-model").append(o);
    }
    pickModel();
  }

  function pickModel() {
    const option = $("drag-model").selectedOptions[0];
    state.model = option ? JSON.parse(option.dataset.entry) : null;
    state.latent = null;
    clearPoints();
    $("drag-image").removeAttribute("src");
    const d = state.model.drag;
    $("drag-steps").max = d.max_steps;
    $("drag-info").textContent = `${d.resolution}x${d.resolution}, up to ${d.max_points} ` +
      `pairs and ${d.max_steps} steps`;
    busy(false);
    status("Pick a seed and press Sample.", "idle");
  }

  function clearPoints() {
    state.handles = [];
    state.targets = [];
    state.pending = null;
    state.mask = null;
    draw();
  }

  // One drag request: calls onLine for each line of the stream; returns the last one.
  async function stream(body, onLine) {
    state.controller = new AbortController();
    const res = await api(`/v1/models/${encodeURIComponent(state.model.name)}/drag`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
      signal: state.controller.signal,
    });
    if (!res.ok) throw await failure(res);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let last = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = text.indexOf("\n")) >= 0) {
        const line = JSON.parse(text.slice(0, cut));
        text = text.slice(cut + 1);
        if (line.error) throw new Error(line.error);
        last = line;
        await onLine(line);
      }
    }
    if (!last || !last.done) throw new Error("the stream ended before the drag did");
    return last;
  }

  function show(url) {
    const img = $("drag-image");
    return new Promise((resolve) => {
      img.onload = () => resolve(true);
      img.onerror = () => resolve(false);
      img.src = url;
    });
  }

  async function sample() {
    if (!state.model) return;
    const seed = Number($("drag-seed").value);
    clearPoints();
    busy(true);
    status(`Sampling seed ${seed}...`, "busy");
    try {
      const last = await stream({ seed, handles: [], targets: [] }, (line) => show(line.image));
      state.latent = last.latent;
      status(`Seed ${seed}: click a handle, then its target.`, "ready");
    } catch (err) {
      status(`Failed: ${err.message}`, "error");
    } finally {
      busy(false);
    }
  }

  async function run() {
    if (!state.latent) return;
    if (!state.handles.length) {
      status("Click a handle and its target first.", "error");
      return;
    }
    const body = {
      latent: state.latent,
      handles: state.handles,
      targets: state.targets,
      steps: Number($("drag-steps").value),
      lr: Number($("drag-lr").value),
    };
    if (state.mask) body.mask = state.mask.toDataURL("image/png");
    state.frames = 0;
    busy(true);
    status("Dragging...", "busy");
    try {
      const last = await stream(body, async (line) => {
        if (line.done) return; // the last line: below
        state.handles = line.points;
        if ((await show(line.image)) && line.step > 0) state.frames += 1; // drawn while running
        draw();
        status(`Dragging: step ${line.step} of at most ${line.steps}`, "busy");
      });
      state.latent = last.latent;
      state.handles = last.points;
      await show(last.image);
      draw();
      const how = last.arrived ? "every handle arrived" : "stopped before every handle arrived";
      status(`Done: ${last.step} steps, ${how}.`, "done");
    } catch (err) {
      const stopped = err.name === "AbortError";
      status(stopped ? "Stopped." : `Failed: ${err.message}`, stopped ? "ready" : "error");
    } finally {
      busy(false);
    }
  }

  // ---------------------------------------------------------------- the overlay: points, mask
  function toImage(event) {
    const canvas = $("drag-overlay");
    const box = canvas.getBoundingClientRect();
    const r = state.model.drag.resolution;
    const clamp = (v) => Math.min(r - 1, Math.max(0, Math.round(v * 10) / 10));
    return [
      clamp(((event.clientX - box.left) / box.width) * r - 0.5),
      clamp(((event.clientY - box.top) / box.height) * r - 0.5),
    ];
  }

  function paint(point) {
    const r = state.model.drag.resolution;
    if (!state.mask) {
      state.mask = document.createElement("canvas");
      state.mask.width = state.mask.height = r;
      const ctx = state.mask.getContext("2d");
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, r, r);
    }
    const ctx = state.mask.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.arc(point[0] + 0.5, point[1] + 0.5, Math.max(1, r / 16), 0, 2 * Math.PI);
    ctx.fill();
    draw();
  }

  function draw() {
    const canvas = $("drag-overlay");
    const w = (canvas.width = canvas.clientWidth || 1);
    const h = (canvas.height = canvas.clientHeight || 1);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!state.model) return;
    const r = state.model.drag.resolution;
    const at = (p) => [((p[0] + 0.5) / r) * w, ((p[1] + 0.5) / r) * h];
    if (state.mask) {
      ctx.globalAlpha = 0.3;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(state.mask, 0, 0, w, h);
      ctx.globalAlpha = 1;
    }
    const dot = (p, color) => {
      const [x, y] = at(p);
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, 2 * Math.PI);
      ctx.fill();
    };
    state.handles.forEach((p, i) => {
      const t = state.targets[i];
      if (t) {
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(...at(p));
        ctx.lineTo(...at(t));
        ctx.stroke();
        dot(t, "#2a6bd1");
      }
      dot(p, "#d12a2a");
    });
    if (state.pending) dot(state.pending, "#d12a2a");
  }

  let painting = false;
  const overlay = $("drag-overlay");
  overlay.addEventListener("pointerdown", (e) => {
    if (!state.latent || !$("drag-stop").disabled) return; // nothing shown, or running
    const p = toImage(e);
    if ($("drag-mask-mode").checked) {
      painting = true;
      paint(p);
      return;
    }
    if (state.pending) {
      if (state.handles.length >= state.model.drag.max_points) {
        status(`At most ${state.model.drag.max_points} pairs.`, "error");
        return;
      }
      state.handles.push(state.pending);
      state.targets.push(p);
      state.pending = null;
      status(`${state.handles.length} pair(s): press Drag, or click more.`, "ready");
    } else {
      state.pending = p;
    }
    draw();
  });
  overlay.addEventListener("pointermove", (e) => {
    if (painting) paint(toImage(e));
  });
  window.addEventListener("pointerup", () => {
    painting = false;
  });
  window.addEventListener("resize", draw);

  document.addEventListener("models", (e) => setup(e.detail));
  $("drag-model").addEventListener("change", pickModel);
  $("drag-sample").addEventListener("click", sample);
  $("drag-clear").addEventListener("click", clearPoints);
  $("drag-stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("drag-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run();
  });
})();
