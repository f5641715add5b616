"use strict";
// The upload page: every value from the server is written with textContent, never as HTML.

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const dropZone = document.getElementById("drop-zone");
const preview = document.getElementById("preview");
const submit = document.getElementById("submit");
const errorBox = document.getElementById("error");
let chosenFile = null;

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function choose(file) {
  if (!file) return;
  chosenFile = file;
  // Consent is given per prediction: after an answer, the next photo starts with both unticked.
  if (!document.getElementById("result").hidden) {
    document.getElementById("rgpd-consent").checked = false;
    document.getElementById("photo-consent").checked = false;
  }
  submit.disabled = false;
  errorBox.hidden = true;
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  document.getElementById("drop-text").textContent = file.name;
}

fileInput.addEventListener("change", () => choose(fileInput.files[0]));
["dragenter", "dragover"].forEach((name) => dropZone.addEventListener(name, (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
}));
["dragleave", "drop"].forEach((name) => dropZone.addEventListener(name, (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
}));
dropZone.addEventListener("drop", (event) => choose(event.dataTransfer.files[0]));

function percent(value) {
  return `${(value * 100).toFixed(1)} %`;
}

function render(answer) {
  document.getElementById("verdict").textContent =
    `It's a ${answer.prediction} (${percent(answer.confidence)} sure)`;
  document.getElementById("meter-cat").value = answer.proba_cat;
  document.getElementById("meter-dog").value = answer.proba_dog;
  document.getElementById("proba-cat").textContent = percent(answer.proba_cat);
  document.getElementById("proba-dog").textContent = percent(answer.proba_dog);
  document.getElementById("prediction-id").textContent = answer.prediction_id;
  document.getElementById("model-version").textContent = answer.model_version;
  document.getElementById("inference-time").textContent = answer.inference_time_ms.toFixed(1);
  document.getElementById("not-pet-warning").hidden = answer.is_cat_or_dog;
  document.getElementById("result").hidden = false;
  document.dispatchEvent(new CustomEvent("prediction", { detail: answer }));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosenFile) return;
  const body = new FormData();
  body.append("file", chosenFile);
  body.append("rgpd_consent", document.getElementById("rgpd-consent").checked);
  body.append("photo_consent", document.getElementById("photo-consent").checked);
  submit.disabled = true;
  errorBox.hidden = true;
  try {
    const response = await fetch("/predict", { method: "POST", body });
    const payload = await response.json().catch(() => ({ detail: response.statusText }));
    if (!response.ok) {
      showError(payload.detail || `The server answered ${response.status}`);
      return;
    }
    render(payload);
  } catch (err) {
    showError("The service could not be reached. Try again in a moment.");
  } finally {
    submit.disabled = false;
  }
});

// Feedback goes straight to the feedback service (CORS-restricted to this page's origin).
const feedbackUrl = (document.querySelector('meta[name="feedback-url"]')?.content || "").replace(/\/$/, "");
const feedbackStatus = document.getElementById("feedback-status");
const labelChoice = document.getElementById("true-label-choice");
const voteButtons = [...document.querySelectorAll("#feedback button")];
const MAX_ATTEMPTS = 4;
let currentPrediction = null;

function say(message, failed = false) {
  feedbackStatus.textContent = message;
  feedbackStatus.classList.toggle("failed", failed);
}

function setBusy(busy) {
  voteButtons.forEach((button) => { button.disabled = busy; });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// 503 (database away) and 429 (too fast) are retried after the Retry-After the service sends.
async function callFeedback(path, options) {
  for (let attempt = 1; ; attempt += 1) {
    let response;
    try {
      response = await fetch(`${feedbackUrl}${path}`, { ...options, mode: "cors", credentials: "omit" });
    } catch (err) {
      if (attempt >= MAX_ATTEMPTS) throw err;
      await sleep(1000 * attempt);
      continue;
    }
    const retryable = response.status === 503 || response.status === 429;
    if (!retryable || attempt >= MAX_ATTEMPTS) return response;
    const seconds = Number(response.headers.get("Retry-After")) || attempt;
    say(`The service is busy; trying again in ${seconds} s…`);
    await sleep(Math.min(seconds, 30) * 1000);
  }
}

async function detailOf(response) {
  const payload = await response.json().catch(() => ({}));
  return payload.detail || `The feedback service answered ${response.status}`;
}

async function sendFeedback(satisfaction, trueLabel) {
  if (!currentPrediction) return;
  const body = {
    prediction_id: currentPrediction.prediction_id,
    satisfaction,
    rgpd_consent: document.getElementById("rgpd-consent").checked,
  };
  if (trueLabel) body.true_label = trueLabel;
  setBusy(true);
  say("Sending…");
  try {
    const response = await callFeedback("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) {
      say(await detailOf(response), true);
      return;
    }
    const answer = await response.json();
    say(answer.stored
      ? "Thank you! Your feedback is kept with this prediction; you can change it or erase it."
      : "Thank you! Your feedback was counted; nothing about it was kept.");
    document.getElementById("feedback-yes").classList.toggle("chosen", satisfaction === "satisfied");
    document.getElementById("feedback-no").classList.toggle("chosen", satisfaction === "unsatisfied");
    labelChoice.hidden = true;
  } catch (err) {
    say("The feedback service could not be reached. Try again in a moment.", true);
  } finally {
    setBusy(false);
  }
}

async function erase() {
  if (!currentPrediction) return;
  setBusy(true);
  let erased = false;
  try {
    const response = await callFeedback(`/predictions/${currentPrediction.prediction_id}`, { method: "DELETE" });
    if (response.status === 204 || response.status === 202) {
      // 202: not stored yet (still on its way); it is refused when it arrives.
      erased = true;
      say("Erased: nothing about this prediction is kept any more.");
    } else {
      say(await detailOf(response), true);
    }
  } catch (err) {
    say("The feedback service could not be reached. Try again in a moment.", true);
  } finally {
    // Once erased there is nothing left to give feedback on.
    setBusy(erased);
  }
}

document.getElementById("feedback-yes").addEventListener("click", () => sendFeedback("satisfied", null));
document.getElementById("feedback-no").addEventListener("click", () => {
  labelChoice.hidden = false;
  say("What was it?");
});
document.querySelectorAll(".label-choice").forEach((button) => {
  button.addEventListener("click", () => sendFeedback("unsatisfied", button.dataset.label || null));
});
document.getElementById("erase").addEventListener("click", erase);

document.addEventListener("prediction", (event) => {
  currentPrediction = event.detail;
  // After 👎 only the other class can be the truth; "neither" stays available.
  document.getElementById("true-cat").hidden = currentPrediction.prediction === "cat";
  document.getElementById("true-dog").hidden = currentPrediction.prediction === "dog";
  labelChoice.hidden = true;
  say("");
  setBusy(false);
  document.querySelectorAll(".vote").forEach((button) => button.classList.remove("chosen"));
  document.getElementById("access-link").href =
    `${feedbackUrl}/predictions/${encodeURIComponent(currentPrediction.prediction_id)}`;
});
