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
