"use strict";
// The upload page: every value from the server is written with textContent, never as HTML.
// Every word comes from the catalogues through i18n.t; API `detail` strings are for programs,
// so an error shows the page's own message for its status.

const form = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const dropZone = document.getElementById("drop-zone");
const preview = document.getElementById("preview");
const submit = document.getElementById("submit");
const errorBox = document.getElementById("error");
let chosenFile = null;
let shownError = null;
let lastAnswer = null;

function showError(key, values = {}) {
  shownError = { key, values };
  errorBox.textContent = i18n.t(key, values);
  errorBox.hidden = false;
}

function hideError() {
  shownError = null;
  errorBox.hidden = true;
}

// The formats the file input accepts, as people name them: "JPEG, PNG, WebP, …", from its MIME
// types (the extensions after them are there for systems that do not know HEIC's or AVIF's type).
const FORMAT_NAMES = { webp: "WebP" };
function acceptedFormats() {
  const names = fileInput.accept.split(",").map((entry) => entry.trim())
    .filter((entry) => entry.startsWith("image/"))
    .map((type) => type.slice("image/".length))
    .map((subtype) => FORMAT_NAMES[subtype] || subtype.toUpperCase());
  return [...new Set(names)].join(", ");
}

function predictError(status) {
  const known = [400, 408, 413, 415, 422, 429, 431, 503];
  if (!known.includes(status)) return ["error.predict.other", { status }];
  return [`error.predict.${status}`, status === 415 ? { formats: acceptedFormats() } : {}];
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
  hideError();
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const dropText = document.getElementById("drop-text");
  // The file's own name, whatever the language: no catalogue key any more.
  delete dropText.dataset.i18n;
  dropText.textContent = file.name;
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

function showFigures(answer) {
  const confidence = i18n.percent(answer.confidence);
  // A photo of neither leads with that: the model's pick is only a guess, said in the warning.
  document.getElementById("verdict").textContent = answer.is_cat_or_dog
    ? i18n.t(answer.prediction === "cat" ? "result.cat" : "result.dog", { confidence })
    : i18n.t("result.neither");
  document.getElementById("not-pet-warning").textContent = answer.is_cat_or_dog ? ""
    : i18n.t("result.not_pet", { guess: i18n.t(`result.guess_${answer.prediction}`), confidence });
  const notKept = document.getElementById("photo-not-kept");
  notKept.hidden = !answer.photo_not_kept_reason;
  notKept.textContent = answer.photo_not_kept_reason ? i18n.t(`photo.${answer.photo_not_kept_reason}`) : "";
  document.getElementById("proba-cat").textContent = i18n.percent(answer.proba_cat);
  document.getElementById("proba-dog").textContent = i18n.percent(answer.proba_dog);
  document.getElementById("inference-time").textContent = i18n.number(answer.inference_time_ms, 1);
}

function render(answer) {
  lastAnswer = answer;
  showFigures(answer);
  document.getElementById("meter-cat").value = answer.proba_cat;
  document.getElementById("meter-dog").value = answer.proba_dog;
  document.getElementById("prediction-id").textContent = answer.prediction_id;
  document.getElementById("model-version").textContent = answer.model_version;
  document.getElementById("not-pet-warning").hidden = answer.is_cat_or_dog;
  document.getElementById("result").hidden = false;
  document.dispatchEvent(new CustomEvent("prediction", { detail: answer }));
}

// A failed upload leaves no earlier answer on screen, as if it were this photo's.
function forgetAnswer() {
  lastAnswer = null;
  document.getElementById("result").hidden = true;
  document.dispatchEvent(new CustomEvent("prediction", { detail: null }));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosenFile) return;
  const body = new FormData();
  body.append("file", chosenFile);
  body.append("rgpd_consent", document.getElementById("rgpd-consent").checked);
  body.append("photo_consent", document.getElementById("photo-consent").checked);
  submit.disabled = true;
  hideError();
  try {
    const response = await fetch("/predict", { method: "POST", body });
    if (!response.ok) {
      forgetAnswer();
      showError(...predictError(response.status));
      return;
    }
    render(await response.json());
  } catch (err) {
    forgetAnswer();
    showError("error.predict.unreachable");
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
let said = null;

function say(key, values = {}, failed = false) {
  said = key ? { key, values, failed } : null;
  feedbackStatus.textContent = key ? i18n.t(key, values) : "";
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
    say("feedback.busy", { seconds });
    await sleep(Math.min(seconds, 30) * 1000);
  }
}

function sayFeedbackError(status) {
  if ([404, 422, 429, 503].includes(status)) say(`error.feedback.${status}`, {}, true);
  else say("error.feedback.other", { status }, true);
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
  say("feedback.sending");
  try {
    const response = await callFeedback("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) {
      sayFeedbackError(response.status);
      return;
    }
    const answer = await response.json();
    say(answer.stored ? "feedback.kept" : "feedback.counted");
    document.getElementById("feedback-yes").classList.toggle("chosen", satisfaction === "satisfied");
    document.getElementById("feedback-no").classList.toggle("chosen", satisfaction === "unsatisfied");
    labelChoice.hidden = true;
  } catch (err) {
    say("error.feedback.unreachable", {}, true);
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
      hideKept();
      say("rights.erased");
    } else {
      sayFeedbackError(response.status);
    }
  } catch (err) {
    say("error.feedback.unreachable", {}, true);
  } finally {
    // Once erased there is nothing left to give feedback on.
    setBusy(erased);
  }
}

// What the feedback service keeps about the prediction, laid out to be read in the page's
// language, the photo as a picture; the JSON it came as is offered as a file to download.
const kept = document.getElementById("kept");
let keptRecord = null;

function when(iso) {
  return new Intl.DateTimeFormat(i18n.language, { dateStyle: "long", timeStyle: "short" }).format(new Date(iso));
}

function feedbackWords(feedback) {
  if (!feedback) return i18n.t("kept.none");
  const verdict = feedback.satisfaction === "satisfied" ? i18n.t("kept.right")
    : feedback.true_label ? i18n.t("kept.wrong_was", { label: i18n.t(`feedback.${feedback.true_label}`) })
    : i18n.t("kept.wrong");
  return i18n.t("kept.given", { verdict, when: when(feedback.updated_at) });
}

function showKept(record) {
  const { photo, embedding } = record;
  const rows = [
    ["kept.made", when(record.created_at)],
    ["kept.answer", i18n.t(`feedback.${record.prediction}`)],
    ["kept.probabilities", i18n.t("kept.probabilities_value",
      { cat: i18n.percent(record.proba_cat), dog: i18n.percent(record.proba_dog) })],
    ["kept.model", record.model_version],
    ["kept.consent", i18n.t(record.rgpd_consent ? "kept.yes" : "kept.no")],
    ["kept.feedback", feedbackWords(record.feedback)],
    ["kept.photo", photo ? i18n.t("kept.photo_value",
      { size: i18n.number(photo.size_bytes / 1024, 1), when: when(photo.created_at) }) : i18n.t("kept.none")],
    ["kept.embedding", embedding ? i18n.t("kept.embedding_value",
      { count: embedding.values.length, version: embedding.model_version }) : i18n.t("kept.none")],
    ["kept.erased_after", when(record.erased_automatically_after)],
  ];
  document.getElementById("kept-fields").replaceChildren(...rows.flatMap(([key, value]) => {
    const term = document.createElement("dt");
    term.textContent = i18n.t(key);
    const detail = document.createElement("dd");
    detail.textContent = value;
    return [term, detail];
  }));
  const picture = document.getElementById("kept-photo");
  picture.hidden = !photo;
  picture.alt = photo ? i18n.t("kept.photo") : "";
  if (photo) picture.src = `data:${photo.content_type};base64,${photo.image_base64}`;
  else picture.removeAttribute("src");
}

function hideKept() {
  keptRecord = null;
  kept.hidden = true;
  const download = document.getElementById("kept-download");
  if (download.href) URL.revokeObjectURL(download.href);
  download.removeAttribute("href");
}

async function access() {
  if (!currentPrediction) return;
  const id = currentPrediction.prediction_id;
  try {
    const response = await callFeedback(`/predictions/${encodeURIComponent(id)}`, { method: "GET" });
    if (response.status !== 200) {
      sayFeedbackError(response.status);
      return;
    }
    const raw = await response.text();
    hideKept();
    keptRecord = JSON.parse(raw);
    showKept(keptRecord);
    const download = document.getElementById("kept-download");
    download.href = URL.createObjectURL(new Blob([raw], { type: "application/json" }));
    download.download = `prediction-${id}.json`;
    kept.hidden = false;
  } catch (err) {
    say("error.feedback.unreachable", {}, true);
  }
}

document.getElementById("access").addEventListener("click", access);
document.getElementById("feedback-yes").addEventListener("click", () => sendFeedback("satisfied", null));
document.getElementById("feedback-no").addEventListener("click", () => {
  labelChoice.hidden = false;
  say("feedback.what_was_it");
});
document.querySelectorAll(".label-choice").forEach((button) => {
  button.addEventListener("click", () => sendFeedback("unsatisfied", button.dataset.label || null));
});
// Erasing cannot be undone: it asks first.
const eraseConfirm = document.getElementById("erase-confirm");
document.getElementById("erase").addEventListener("click", () => { eraseConfirm.hidden = false; });
document.getElementById("erase-cancel").addEventListener("click", () => { eraseConfirm.hidden = true; });
document.getElementById("erase-yes").addEventListener("click", () => {
  eraseConfirm.hidden = true;
  erase();
});

document.addEventListener("prediction", (event) => {
  currentPrediction = event.detail;
  eraseConfirm.hidden = true;
  hideKept();
  say(null);
  if (!currentPrediction) return;
  // After 👎 only the other class can be the truth; "neither" stays available.
  document.getElementById("true-cat").hidden = currentPrediction.prediction === "cat";
  document.getElementById("true-dog").hidden = currentPrediction.prediction === "dog";
  labelChoice.hidden = true;
  setBusy(false);
  document.querySelectorAll(".vote").forEach((button) => button.classList.remove("chosen"));
});

// A language chosen with the switch redraws what the page wrote itself; the dashboard opens in it.
i18n.onChange((language) => {
  document.getElementById("monitoring-link").href = `/monitoring?lang=${language}`;
  if (lastAnswer) showFigures(lastAnswer);
  if (keptRecord) showKept(keptRecord);
  if (shownError) showError(shownError.key, shownError.values);
  if (said) say(said.key, said.values, said.failed);
});
