// The page's Generate panel, for the served generating models (dcgan, cgan, stackgan...): n new
// images of a seed, as the grid GET /v1/models/{name}/sample returns; a class box for a
// class-conditional model (its classes in GET /v1/models) and a prompt box for a
// text-conditioned one (its parameters list "prompt"). Uses app.js's $, api (the API key),
// failure and display.
"use strict";

(() => {
  let model = null; // the generator's entry in GET /v1/models
  let url = null; // the grid shown

  function status(text, phase) {
    $("sample-status").textContent = text;
    $("sample-status").className = phase === "error" ? "error" : "";
    document.body.dataset.sample = phase;
  }

  const takes = (name) => Boolean(model && (model.parameters || []).includes(name));

  function setup(body) {
    const generators = body.generators || [];
    $("sample-panel").hidden = generators.length === 0;
    if (!generators.length) return;
    $("sample-model").replaceChildren();
    for (const g of generators) {
      const o = document.createElement("option");
      o.value = g.name;
      o.textContent = `${g.name} (${g.plugin})`;
      o.dataset.entry = JSON.stringify(g);
      $("sample-model").append(o);
    }
    pickModel();
  }

  function pickModel() {
    const option = $("sample-model").selectedOptions[0];
    model = option ? JSON.parse(option.dataset.entry) : null;
    if (!model) return;
    $("sample-prompt-box").hidden = !takes("prompt");
    $("sample-class-box").hidden = !model.classes.length;
    const classes = $("sample-class");
    classes.replaceChildren(new Option("random per image", ""));
    for (const name of model.classes) classes.append(new Option(name, name));
    const max = model.limits.max_samples;
    $("sample-n").max = max;
    $("sample-n").value = Math.min(Number($("sample-n").value) || 4, max);
    $("sample-info").textContent = `${model.plugin}, up to ${max} images` +
      (takes("prompt") ? ", from a prompt" : "");
    status(takes("prompt") ? "Type a prompt and press Generate." : "Press Generate.", "idle");
  }

  async function generate() {
    if (!model) return;
    const params = new URLSearchParams({ n: $("sample-n").value || "1" });
    if ($("sample-seed").value !== "") params.set("seed", $("sample-seed").value);
    const prompt = takes("prompt") ? $("sample-prompt").value.trim() : "";
    if (prompt) params.set("prompt", prompt);
    if (takes("class") && $("sample-class").value) params.set("class", $("sample-class").value);
    $("sample-run").disabled = true;
    status(`Generating with ${model.name}...`, "busy");
    try {
      const res = await api(`/v1/models/${encodeURIComponent(model.name)}/sample?${params}`);
      if (!res.ok) throw await failure(res);
      const img = $("sample-output");
      url = await display(img, await res.blob(), url);
      const size = `${img.naturalWidth}x${img.naturalHeight}`;
      $("sample-size").textContent = size;
      const link = $("sample-download");
      link.href = url;
      link.download = `${model.name}-samples.png`;
      link.hidden = false;
      const ms = res.headers.get("X-Processing-Time-Ms");
      const what = prompt ? ` of "${prompt}"` : takes("prompt") ? " of random text vectors" : "";
      status(`Done: ${res.headers.get("X-Samples")} images${what} from ` +
        `${res.headers.get("X-Model")} in ${ms} ms (${size}).`, "done");
    } catch (err) {
      status(`Failed: ${err.message}`, "error");
    } finally {
      $("sample-run").disabled = false;
    }
  }

  document.addEventListener("models", (e) => setup(e.detail));
  $("sample-model").addEventListener("change", pickModel);
  $("sample-form").addEventListener("submit", (e) => {
    e.preventDefault();
    generate();
  });
})();
