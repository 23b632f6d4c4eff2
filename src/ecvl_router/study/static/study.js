// The online study page: start a session, ask a question (with an uploaded or a demo image), read the
// streamed answer, rate it, and only then see which model answered. Plain JavaScript, no dependencies.
"use strict";

(() => {
  const API = "/study/api";
  const STORED_PARTICIPANT = "ecvl-router-study-participant";
  const $ = (id) => document.getElementById(id);
  const state = { settings: null, session: null, query: null, suggestion: "", upload: null, previewUrl: null };

  // ------------------------------------------------------------------ helpers
  async function request(path, body) {
    const init = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(API + path, init);
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }

  function showError(message) { $("error").textContent = message; }
  function clearError() { $("error").textContent = ""; }

  function element(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function radioChoice(name, id, value, labelContent, className = "choice") {
    const wrapper = element("div", { class: className });
    const input = element("input", { type: "radio", name, id, value });
    const label = element("label", { for: id });
    label.append(...labelContent);
    wrapper.append(input, label);
    return wrapper;
  }

  function seconds(ms) { return `${(ms / 1000).toFixed(2)} s`; }

  // Server-sent events from a fetch() response: calls onEvent(name, data) for each event.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = /\r?\n\r?\n/.exec(buffer)) !== null) {
        const raw = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        let name = "message";
        let data = "";
        for (const line of raw.split(/\r?\n/)) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) onEvent(name, JSON.parse(data));
      }
    }
  }

  // ------------------------------------------------------------------ page set-up
  function renderScenarios() {
    const fieldset = $("scenario-choices");
    state.settings.scenarios.forEach((scenario, index) => {
      const description = element("span", { class: "scenario-description" }, scenario.description);
      const choice = radioChoice("scenario", `scenario-${index}`, scenario.name, [element("strong", {}, scenario.title), description]);
      if (index === 0) choice.querySelector("input").checked = true;
      fieldset.append(choice);
    });
  }

  // A study about images starts with an image: the first demo image when there is one, else no image.
  function renderDemoImages() {
    const grid = $("demo-images");
    for (const image of state.settings.demo_images) {
      const picture = element("img", { src: `/study/demo-images/${image.id}`, alt: `${image.title} (demo image)` });
      const choice = radioChoice("image-source", `image-${image.id}`, image.id, [picture, element("span", {}, image.title)], "demo-choice");
      grid.append(choice);
    }
    const first = grid.querySelector('input[name="image-source"]');
    (first || $("image-none")).checked = true;
  }

  function renderRating() {
    const rating = state.settings.rating;
    const fieldset = $("rating-choices");
    if (rating.scale === "score") {
      $("rating-legend").textContent = "How good is this answer? (1 = worst, 10 = best)";
      for (const { score, text } of rating.rubric) {
        fieldset.append(radioChoice("rating", `rating-${score}`, String(score),
          [element("span", { class: "score" }, String(score)), document.createTextNode(` ${text}`)], "rating-choice"));
      }
    } else {
      $("rating-legend").textContent = rating.question;
      fieldset.append(radioChoice("rating", "rating-yes", "yes", [document.createTextNode("Yes")], "rating-choice"));
      fieldset.append(radioChoice("rating", "rating-no", "no", [document.createTextNode("No")], "rating-choice"));
    }
  }

  // ------------------------------------------------------------------ start
  async function start(event) {
    event.preventDefault();
    clearError();
    const scenario = document.querySelector('input[name="scenario"]:checked');
    if (!scenario) { showError("Choose a scenario."); return; }
    $("start-button").disabled = true;
    try {
      const response = await request("/sessions", { participant: $("participant").value.trim() || null, scenario: scenario.value });
      state.session = await response.json();
      localStorage.setItem(STORED_PARTICIPANT, state.session.participant);
      $("participant").value = state.session.participant;
      const info = $("session-info");
      info.textContent = `Participant ${state.session.participant} · scenario “${state.session.title}” · ` +
        `${state.session.rated} answer(s) rated so far.`;
      info.hidden = false;
      for (const control of $("start-form").elements) control.disabled = true;  // one session per page
      $("ask").hidden = false;
      imageSourceChanged();
      $("ask-heading").focus();
    } catch (error) {
      showError(error.message);
      $("start-button").disabled = false;
    }
  }

  // ------------------------------------------------------------------ image choice
  function selectedImageSource() {
    return document.querySelector('input[name="image-source"]:checked').value;
  }

  function showPreview(src, caption) {
    $("preview-image").src = src;
    $("preview-image").alt = caption;
    $("preview-caption").textContent = caption;
    $("preview").hidden = false;
  }

  function forgetUpload() {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.upload = null;
    state.previewUrl = null;
    $("image-file").value = "";
  }

  function imageSourceChanged() {
    const source = selectedImageSource();
    if (source !== "upload") forgetUpload();  // the file field shows only the image that will be sent
    const question = $("question");
    const demo = state.settings.demo_images.find((image) => image.id === source);
    if (demo) {
      if (!question.value.trim() || question.value === state.suggestion) {
        question.value = demo.question;
        state.suggestion = demo.question;
      }
      showPreview(`/study/demo-images/${demo.id}`, `Demo image: ${demo.title}`);
    } else if (source === "upload" && state.upload) {
      showPreview(state.previewUrl, `Your image: ${state.upload.name}`);
    } else {
      $("preview").hidden = true;
    }
  }

  function fileChosen() {
    const file = $("image-file").files[0];
    clearError();
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.upload = null;
    state.previewUrl = null;
    if (!file) { imageSourceChanged(); return; }
    if (file.size > state.settings.max_image_bytes) {
      showError(`The image has ${file.size} bytes; the limit is ${state.settings.max_image_bytes}.`);
      $("image-file").value = "";
      return;
    }
    state.upload = file;
    state.previewUrl = URL.createObjectURL(file);
    $("image-upload").checked = true;
    imageSourceChanged();
  }

  function dataUri(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
      reader.readAsDataURL(file);
    });
  }

  // ------------------------------------------------------------------ ask
  async function ask(event) {
    event.preventDefault();
    clearError();
    const question = $("question").value.trim();
    if (!question) { showError("Write a question first."); $("question").focus(); return; }
    const body = { question };
    const source = selectedImageSource();
    if (source === "upload") {
      if (!state.upload) { showError("Choose an image file to upload, or pick another image option."); $("image-file").focus(); return; }
      body.image = await dataUri(state.upload);
      body.image_name = state.upload.name;
    } else if (source !== "none") {
      body.demo_image = source;
    }
    resetAnswer();
    $("ask-button").disabled = true;
    $("answer").hidden = false;
    $("answer-heading").focus();
    const started = performance.now();
    const timer = setInterval(() => { $("answer-time").textContent = `Answering… ${seconds(performance.now() - started)}`; }, 100);
    let firstWords = null;
    let finished = false;
    try {
      const response = await request(`/sessions/${state.session.session}/ask`, body);
      await readEvents(response, (name, data) => {
        if (name === "query") state.query = data.query;
        else if (name === "delta") {
          if (firstWords === null) firstWords = performance.now() - started;
          $("answer-text").append(document.createTextNode(data.text));
        } else if (name === "done") finished = true;
        else if (name === "error") throw new Error(data.message);
      });
      if (!finished) throw new Error("The answer stopped before its end.");
      const total = performance.now() - started;
      $("answer-time").textContent = `Answered in ${seconds(total)}` + (firstWords === null ? "." : ` (first words after ${seconds(firstWords)}).`);
      $("answer-text").setAttribute("aria-busy", "false");
      $("rate").hidden = false;
      $("rating-choices").querySelector("input").focus();
    } catch (error) {
      $("answer-time").textContent = "";
      showError(`No answer: ${error.message}`);
      $("ask-button").disabled = false;
    } finally {
      clearInterval(timer);
    }
  }

  function resetAnswer() {
    state.query = null;
    $("answer-text").textContent = "";
    $("answer-text").setAttribute("aria-busy", "true");
    $("answer-time").textContent = "";
    $("rate").hidden = true;
    $("rate-form").reset();
    $("rate-button").disabled = false;
    $("reveal").hidden = true;
    $("again-button").hidden = true;
  }

  // ------------------------------------------------------------------ rate
  async function rate(event) {
    event.preventDefault();
    clearError();
    const choice = document.querySelector('input[name="rating"]:checked');
    if (!choice) { showError("Choose a rating first."); $("rating-choices").querySelector("input").focus(); return; }
    const body = state.settings.rating.scale === "score" ? { score: Number(choice.value) } : { meets: choice.value === "yes" };
    $("rate-button").disabled = true;
    try {
      const reveal = await (await request(`/queries/${state.query}/rating`, body)).json();
      const where = reveal.route === "edge" ? "the small on-device (edge) model" : "the large cloud model";
      $("reveal").textContent = `Thank you. This answer came from ${where}, ${reveal.model}` +
        (reveal.fallback ? " (the other model was chosen first but could not answer)." : ".");
      $("reveal").hidden = false;
      $("again-button").hidden = false;
      for (const input of $("rating-choices").querySelectorAll("input")) input.disabled = true;
      state.session.rated += 1;
      $("session-info").textContent = `Participant ${state.session.participant} · scenario “${state.session.title}” · ` +
        `${state.session.rated} answer(s) rated so far.`;
      $("reveal").focus({ preventScroll: true });
      $("reveal").scrollIntoView({ block: "center" });  // the reveal, not the page's end, comes into view
    } catch (error) {
      showError(error.message);
      $("rate-button").disabled = false;
    }
  }

  function askAgain() {
    resetAnswer();
    for (const input of $("rating-choices").querySelectorAll("input")) input.disabled = false;
    $("answer").hidden = true;
    $("ask-button").disabled = false;
    $("question").value = "";
    state.suggestion = "";
    $("question").focus();
  }

  // ------------------------------------------------------------------ wiring
  async function init() {
    try {
      state.settings = await (await request("/settings")).json();
    } catch (error) {
      showError(`The study is not available: ${error.message}`);
      return;
    }
    renderScenarios();
    renderDemoImages();
    renderRating();
    $("participant").value = localStorage.getItem(STORED_PARTICIPANT) || "";
    $("start-form").addEventListener("submit", start);
    $("ask-form").addEventListener("submit", ask);
    $("rate-form").addEventListener("submit", rate);
    $("again-button").addEventListener("click", askAgain);
    $("image-file").addEventListener("change", fileChosen);
    $("image-choices").addEventListener("change", (event) => { if (event.target.name === "image-source") imageSourceChanged(); });
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", init);
})();
