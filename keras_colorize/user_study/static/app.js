// The study page: one image at a time, answered with buttons or the R / F keys.
// All state lives on the server (keyed by an HttpOnly cookie); the page only renders it, so a
// reload or a later visit continues at the first unanswered image.
"use strict";
(() => {
  const el = (id) => document.getElementById(id);
  const photo = el("photo");
  const preload = new Image();
  let state = null;     // last state from the server
  let shownAt = null;   // performance.now() when the current image appeared; null while loading
  let busy = false;     // an answer is in flight (ignore further clicks and keys)
  let nextPerson = false;  // the intro is shown again for another person on this computer

  function show(section) {
    for (const id of ["intro", "trial", "done"]) el(id).hidden = id !== section;
  }
  function setButtons(enabled) {
    el("answer-real").disabled = !enabled;
    el("answer-fake").disabled = !enabled;
  }
  function showError(message) {
    el("error").textContent = message || "";
    el("error").hidden = !message;
  }

  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    return { status: response.status, data };
  }

  function imageShown() {
    if (!state || photo.dataset.imageId !== state.image_id) return;
    photo.classList.remove("loading");
    shownAt = performance.now();
    setButtons(true);
  }

  function render(s) {
    state = s;
    document.documentElement.style.setProperty("--display-size", s.display_size + "px");
    el("intro-total").textContent = String(s.total);
    if (!s.started) {
      show("intro");
      return;
    }
    if (s.done) {
      el("done-total").textContent = String(s.total);
      show("done");
      return;
    }
    show("trial");
    el("progress").textContent = `Image ${s.position} of ${s.total}`;
    el("progress-bar").max = s.total;
    el("progress-bar").value = s.answered;
    setButtons(false);
    shownAt = null;
    if (photo.dataset.imageId === s.image_id && photo.complete && photo.naturalWidth > 0) {
      imageShown();
    } else {
      photo.classList.add("loading");
      photo.dataset.imageId = s.image_id;
      photo.src = s.image;
    }
    if (s.next_image) preload.src = s.next_image;
  }

  async function refresh() {
    const r = await api("GET", "/api/state");
    if (r.status === 200) render(r.data);
    else showError("The study server did not answer. Reload the page to try again.");
  }

  async function answer(value) {
    if (busy || shownAt === null || !state || state.done) return;
    busy = true;
    setButtons(false);
    const responseMs = Math.round(performance.now() - shownAt);
    try {
      const r = await api("POST", "/api/answer", { image_id: state.image_id, answer: value, response_ms: responseMs });
      if (r.status === 200) {
        showError("");
        render(r.data);
      } else if (r.status === 409 && r.data && r.data.state) {
        render(r.data.state);  // answered already (e.g. in another tab): continue where the server is
      } else if (r.status === 403) {
        await refresh();  // the session is unknown here: back to the start page
      } else {
        showError((r.data && r.data.error) || `The answer was not saved (HTTP ${r.status}).`);
        setButtons(true);
      }
    } catch (_) {
      showError("Connection lost: the answer was not saved. Try again.");
      setButtons(true);
    } finally {
      busy = false;
    }
  }

  photo.addEventListener("load", imageShown);
  photo.addEventListener("error", () => showError("The image could not be loaded. Reload the page to try again."));
  el("answer-real").addEventListener("click", () => answer("real"));
  el("answer-fake").addEventListener("click", () => answer("fake"));
  document.addEventListener("keydown", (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "r" || key === "f") {
      event.preventDefault();
      answer(key === "r" ? "real" : "fake");
    }
  });
  el("start").addEventListener("click", async () => {
    el("start").disabled = true;
    try {
      const r = await api("POST", "/api/start", nextPerson ? { new: true } : {});
      nextPerson = false;
      if (r.status === 200) render(r.data);
      else showError((r.data && r.data.error) || `Could not start (HTTP ${r.status}).`);
    } catch (_) {
      showError("The study server did not answer. Try again.");
    } finally {
      el("start").disabled = false;
    }
  });

  el("next-person").addEventListener("click", () => {
    nextPerson = true;
    show("intro");
  });

  refresh().catch(() => showError("The study server did not answer. Reload the page to try again."));
})();
