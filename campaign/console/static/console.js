// The console's one script (no framework, no network but this site). Pages work
// without it; with it the template editor lints and previews as you type.
"use strict";

(function () {
  const source = document.getElementById("source");
  if (!source || !source.dataset.check) {
    return;
  }
  const gutter = document.getElementById("gutter");
  const findings = document.getElementById("findings");
  const state = document.getElementById("lint-state");
  const csrf = document.getElementById("csrf").value;
  const name = document.getElementById("name").value;
  const option = (id) => {
    const field = document.getElementById(id);
    return field ? field.value : "";
  };
  // The page's language: its words ride on the editor's data-says-* attributes.
  const says = source.dataset;
  let sequence = 0;
  let timer = null;

  function drawGutter(issues) {
    const lines = Math.max(1, source.value.split("\n").length);
    const marks = new Map();
    for (const issue of issues) {
      if (!issue.here || !issue.line) continue;
      const mark = marks.get(issue.line) || { severity: "warning", messages: [] };
      if (issue.severity === "error") mark.severity = "error";
      mark.messages.push(issue.message);
      marks.set(issue.line, mark);
    }
    gutter.textContent = "";
    for (let n = 1; n <= lines; n++) {
      const span = document.createElement("span");
      span.dataset.line = String(n);
      span.className = "ln";
      const mark = marks.get(n);
      if (mark) {
        span.className += " marker " + mark.severity;
        span.title = mark.messages.join("\n");
      }
      span.textContent = String(n);
      gutter.appendChild(span);
      gutter.appendChild(document.createTextNode("\n"));
    }
    gutter.scrollTop = source.scrollTop;
  }

  function drawFindings(issues) {
    findings.textContent = "";
    if (!issues.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = says.saysPasses;
      findings.appendChild(li);
    }
    for (const issue of issues) {
      const li = document.createElement("li");
      li.className = "finding " + issue.severity;
      li.dataset.line = issue.line ? String(issue.line) : "";
      li.dataset.here = issue.here ? "yes" : "no";
      li.textContent = issue.text;
      findings.appendChild(li);
    }
  }

  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }

  function drawPreview(preview, error) {
    const problem = document.getElementById("preview-error");
    problem.textContent = error ? error + " " + says.saysStale : "";
    show("preview-error", Boolean(error));
    document.getElementById("preview").classList.toggle("stale", !preview);
    if (!preview) return;
    document.getElementById("subject").textContent = preview.subject || "";
    show("subject-line", preview.subject !== null);
    const frame = document.getElementById("html-preview");
    frame.srcdoc = preview.html || "";
    frame.hidden = preview.html === null;
    document.getElementById("text-preview").textContent = preview.text;
    const sms = document.getElementById("sms-info");
    sms.textContent = preview.sms
      ? says.saysSms.replace("{units}", preview.sms.units)
        .replace("{encoding}", preview.sms.encoding).replace("{segments}", preview.sms.segments)
      : "";
    show("sms-info", Boolean(preview.sms));
    const notes = document.getElementById("preview-notes");
    notes.textContent = "";
    for (const note of preview.notes) {
      const li = document.createElement("li");
      li.textContent = note;
      notes.appendChild(li);
    }
    const checks = document.getElementById("checks");
    checks.textContent = "";
    for (const check of preview.checks) {
      const li = document.createElement("li");
      li.textContent = check;
      checks.appendChild(li);
    }
  }

  async function check() {
    const mine = ++sequence;
    state.textContent = says.saysChecking;
    const body = new URLSearchParams({
      csrf, name, source: source.value,
      user: option("opt-user"), locale: option("opt-locale"), channel: option("opt-channel"),
    });
    let answer;
    try {
      const response = await fetch(source.dataset.check, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf },
      });
      answer = await response.json();
      if (!response.ok) {
        answer = { issues: [], preview: null, error: answer.error || response.statusText };
      }
    } catch (failure) {
      answer = { issues: [], preview: null, error: says.saysUnanswered + " " + failure };
    }
    if (mine !== sequence) return; // a newer edit is on its way
    drawGutter(answer.issues);
    drawFindings(answer.issues);
    drawPreview(answer.preview, answer.error);
    state.textContent = "";
    document.body.dataset.checked = String(mine);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  }

  source.addEventListener("input", later);
  source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
  for (const id of ["opt-user", "opt-locale", "opt-channel"]) {
    const field = document.getElementById(id);
    if (field) field.addEventListener("change", later);
  }
  const width = document.getElementById("opt-width");
  width.addEventListener("change", () => {
    document.getElementById("html-preview").className = width.value;
  });
  const options = document.getElementById("options");
  options.addEventListener("submit", (event) => { event.preventDefault(); check(); });
  document.body.dataset.checked = "0";
})();
