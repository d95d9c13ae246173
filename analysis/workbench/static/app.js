// dijetscan workbench: the little JavaScript of the pages (no framework, no build step).
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

async function api(method, url, body) {
  const options = { method, headers: { "X-CSRF-Token": csrf } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  return { ok: response.ok, status: response.status, data };
}

function show(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text || "";
}

function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (el.name) values[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return values;
}

// -- definitions list ------------------------------------------------------------------------
function initDefinitions() {
  const table = document.getElementById("entries");
  const kind = table.dataset.kind;
  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.dataset.id;
    const body = { version: table.dataset.version };
    if (button.dataset.action === "delete" && !window.confirm(`Delete ${kind} entry ${id}?`)) return;
    const result = button.dataset.action === "delete"
      ? await api("DELETE", `/api/definitions/${kind}/${id}`, body)
      : await api("POST", `/api/definitions/${kind}/${id}/duplicate`, body);
    if (result.ok) window.location.reload();
    else show("list-error", result.data.error);
  });
}

// -- one entry -------------------------------------------------------------------------------
function initEntry() {
  const form = document.getElementById("entry-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    document.querySelectorAll(".field .error").forEach((el) => { el.textContent = ""; });
    document.querySelectorAll(".field input").forEach((el) => el.classList.remove("invalid"));
    show("form-error", "");
    const { kind, ident, version } = form.dataset;
    const body = { version, values: formValues(form) };
    const result = ident === ""
      ? await api("POST", `/api/definitions/${kind}`, body)
      : await api("PUT", `/api/definitions/${kind}/${ident}`, body);
    if (result.ok) {
      window.location.href = `/definitions/${kind}?saved=${result.data.id}`;
      return;
    }
    const field = result.data.field && document.getElementById(`error-${result.data.field}`);
    if (field) {
      field.textContent = result.data.error;
      document.getElementById(`f-${result.data.field}`).classList.add("invalid");
    } else {
      show("form-error", result.data.error);
    }
  });
}

// -- plot view -------------------------------------------------------------------------------
function initPlot() {
  const form = document.getElementById("plot-form");
  const params = new URLSearchParams(window.location.search);
  for (const select of form.querySelectorAll("select[data-default]")) {
    const wanted = params.get(select.name) || select.dataset.default;
    if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
  }
  let pending = 0;
  async function render() {
    const ticket = ++pending;
    show("plot-status", "rendering…");
    const query = new URLSearchParams(formValues(form));
    const result = await api("GET", `/api/plot?${query}`);
    if (ticket !== pending) return;  // a newer choice is on its way
    if (!result.ok) {
      show("plot-error", result.data.error);
      show("plot-status", "");
      return;
    }
    show("plot-error", "");
    const images = result.data.images;
    document.getElementById("img-clean").src = images["clean"];
    document.getElementById("img-fluctuations").src = images["fluctuations"];
    document.getElementById("img-cwt").src = images["cwt-clean"] || images["cwt-fluctuations"];
    show("plot-status", `rendered in ${result.data.seconds.toFixed(2)} s`);
    document.body.dataset.rendered = query.toString();
  }
  let timer = null;
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(render, 250); });
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(render, 50); });
  form.addEventListener("submit", (event) => { event.preventDefault(); render(); });
  render();
}

// -- sessions --------------------------------------------------------------------------------
function describeChanges(data) {
  const lines = [];
  for (const [kind, diff] of Object.entries(data.definitions)) {
    const parts = ["added", "removed", "changed"].filter((k) => diff[k].length)
      .map((k) => `${k} ${diff[k].join(", ")}`);
    lines.push(`${kind}: ${parts.length ? parts.join("; ") : "unchanged"}`);
  }
  if (data.config_keys.length) lines.push(`config keys: ${data.config_keys.join(", ")}`);
  return lines;
}

function renderChanges(title, data) {
  const box = document.getElementById("session-changes");
  box.replaceChildren();
  const h = document.createElement("h2");
  h.textContent = title;
  const ul = document.createElement("ul");
  for (const line of describeChanges(data)) {
    const li = document.createElement("li");
    li.textContent = line;
    ul.append(li);
  }
  box.append(h, ul);
}

function initSessions() {
  const form = document.getElementById("session-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const result = await api("POST", "/api/sessions", { name: values.name, force: values.force });
    if (result.ok) window.location.reload();
    else show("session-error", result.data.error);
  });
  document.getElementById("session-list").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const name = button.dataset.name;
    show("session-error", "");
    let result;
    if (button.dataset.action === "changes") {
      result = await api("GET", `/api/sessions/${name}`);
      if (result.ok) renderChanges(`Loading '${name}' would change`, result.data);
    } else if (button.dataset.action === "load") {
      result = await api("POST", `/api/sessions/${name}/load`);
      if (result.ok) {
        renderChanges(`Loaded '${name}': what changed`, result.data);
        show("session-status", `loaded session '${name}' (${result.data.written.join(", ")})`);
      }
    } else {
      if (!window.confirm(`Delete session '${name}'?`)) return;
      result = await api("DELETE", `/api/sessions/${name}`);
      if (result.ok) { window.location.reload(); return; }
    }
    if (!result.ok) show("session-error", result.data.error);
  });
}

// -- jobs ------------------------------------------------------------------------------------
function initJobs() {
  const form = document.getElementById("job-form");
  const cancel = document.getElementById("job-cancel");
  function update(job) {
    if (!job) return;
    show("job-stage", `#${job.id} ${job.stage}`);
    show("job-state", job.state);
    show("job-elapsed", `${job.elapsed_s.toFixed(1)} s`);
    const link = document.getElementById("job-results");
    link.href = `/results/view/${job.results}`;
    link.textContent = `results/${job.results}`;
    const bar = document.getElementById("job-progress");
    if (job.progress === null) bar.removeAttribute("value"); else bar.value = job.progress;
    show("job-log", job.log.join("\n"));
    cancel.disabled = job.state !== "running";
  }
  async function poll() {
    const result = await api("GET", "/api/jobs");
    if (result.ok) update(result.data.job);
    const running = result.ok && result.data.job && result.data.job.state === "running";
    setTimeout(poll, running ? 500 : 2000);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show("job-error", "");
    const values = formValues(form);
    const body = {};
    for (const [key, value] of Object.entries(values)) {
      if (value === "") continue;
      body[key] = ["stage", "name", "signal_sizes", "models"].includes(key) ? value : Number(value);
    }
    const result = await api("POST", "/api/jobs", body);
    if (result.ok) update(result.data.job); else show("job-error", result.data.error);
  });
  cancel.addEventListener("click", async () => {
    const result = await api("POST", "/api/jobs/cancel");
    if (result.ok) update(result.data.job); else show("job-error", result.data.error);
  });
  poll();
}

const pages = { definitions: initDefinitions, entry: initEntry, plot: initPlot, sessions: initSessions, jobs: initJobs };
document.addEventListener("DOMContentLoaded", () => {
  const init = pages[document.body.dataset.page];
  if (init) init();
});
