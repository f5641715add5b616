"use strict";
// The page's words, from one JSON catalogue per language (/static/i18n/<language>.json).
// Which language: `?lang=` in the address, else the one last chosen with the switch (kept in
// local storage), else the one the server chose from the browser's Accept-Language (<html lang>).

const i18n = (() => {
  const LANGUAGES = ["en", "fr"];
  const STORAGE_KEY = "lang";
  const listeners = [];
  let language = "en";
  let words = {};

  function remembered() {
    // Local storage can be refused (private modes, policies): the page then only forgets.
    try {
      return localStorage.getItem(STORAGE_KEY);
    } catch (err) {
      return null;
    }
  }

  function remember(chosen) {
    try {
      localStorage.setItem(STORAGE_KEY, chosen);
    } catch (err) {
      // Not kept across visits; the address below still carries it.
    }
    const address = new URL(window.location.href);
    address.searchParams.set("lang", chosen);
    history.replaceState(history.state, "", address);
  }

  function initial() {
    const asked = new URLSearchParams(window.location.search).get("lang");
    for (const candidate of [asked, remembered(), document.documentElement.lang]) {
      if (LANGUAGES.includes(candidate)) return candidate;
    }
    return "en";
  }

  async function fetchCatalogue(chosen) {
    const response = await fetch(`/static/i18n/${chosen}.json`, { credentials: "omit" });
    if (!response.ok) throw new Error(`catalogue ${chosen}: ${response.status}`);
    return response.json();
  }

  // A missing key shows as itself, so that it is seen (the tests keep both catalogues whole).
  function t(key, values = {}) {
    const text = Object.hasOwn(words, key) ? words[key] : key;
    return text.replace(/\{(\w+)\}/g, (field, name) => (Object.hasOwn(values, name) ? String(values[name]) : field));
  }

  function apply() {
    document.documentElement.lang = language;
    document.querySelectorAll("[data-i18n]").forEach((element) => {
      element.textContent = t(element.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-aria-label]").forEach((element) => {
      element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
    });
    document.querySelectorAll("[data-lang]").forEach((link) => {
      if (link.dataset.lang === language) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
    listeners.forEach((listener) => listener(language));
  }

  async function use(chosen) {
    words = await fetchCatalogue(chosen);
    language = chosen;
    apply();
  }

  function number(value, digits) {
    return new Intl.NumberFormat(language, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
  }

  function percent(value) {
    return new Intl.NumberFormat(language, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(value);
  }

  use(initial())
    .catch(() => use("en"))
    .finally(() => document.documentElement.classList.remove("i18n-pending"));

  document.querySelectorAll("[data-lang]").forEach((link) => {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const chosen = link.dataset.lang;
      use(chosen).then(() => remember(chosen));
    });
  });

  return {
    t,
    number,
    percent,
    get language() { return language; },
    onChange(listener) { listeners.push(listener); },
  };
})();
