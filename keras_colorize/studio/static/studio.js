// kc-studio: the folder of photos, one photo's colorization with its colour points, reference and saturation.
// The page keeps no secret of its own: the run's token comes from the address kc-studio printed and goes with
// every API request (header X-KC-Token; in the query for <img> thumbnails). All files live on the server.
"use strict";
(() => {
  const el = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token") || "";
  const MAX_ZOOM = 8;

  let folder = null;          // last /api/photos answer
  let photo = null;           // the open photo: {path, width, height, preview_width, preview_height, guided, ...}
  let edit = null;            // {points: [{x, y, color, size}], reference, saturation}
  let history = [];           // JSON snapshots of `edit`
  let historyIndex = -1;
  let selected = -1;          // index of the selected point
  let renderGen = 0;          // bumped by every change of `edit`
  let shownGen = 0;           // the generation the shown result belongs to
  let rendering = false;
  let afterUrl = null, beforeUrl = null;
  let sampleCanvas = null;    // the shown result drawn once, to read the model's colour at a click
  let zoom = 1;               // 1 = fit to the viewport
  let split = 50;             // percent of the width showing "before"
  let batchTimer = null;
  let openToken = 0;          // guards against a slow photo load finishing after another was opened

  // ------------------------------------------------------------------ plumbing

  function showError(message) {
    el("error").textContent = message || "";
    el("error").hidden = !message;
    if (message) setTimeout(() => { if (el("error").textContent === message) el("error").hidden = true; }, 8000);
  }

  async function api(method, url, body, contentType) {
    const init = { method, cache: "no-store", headers: { "X-KC-Token": token } };
    if (body !== undefined) {
      init.headers["Content-Type"] = contentType || "application/json";
      init.body = contentType ? body : JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }
  const getJson = async (url) => (await api("GET", url)).json();
  const q = (path) => encodeURIComponent(path);

  function setView(view) {
    document.body.dataset.view = view;
    el("folder-view").hidden = view !== "folder";
    el("photo-view").hidden = view !== "photo";
    el("folder-tools").hidden = view !== "folder";
    el("photo-tools").hidden = view !== "photo";
    el("back").hidden = view !== "photo";
  }

  function route() {
    const match = location.hash.match(/^#photo=(.+)$/);
    if (match) openPhoto(decodeURIComponent(match[1]));
    else showFolder();
  }

  // ------------------------------------------------------------------ folder view

  async function showFolder() {
    photo = null;
    openToken++;
    setView("folder");
    el("subtitle").textContent = "";
    if (!token) {
      showError("Open the address kc-studio printed (it ends in ?token=...).");
      return;
    }
    try {
      folder = await getJson("/api/photos");
    } catch (e) {
      showError(e.message);
      return;
    }
    renderGrid();
    showBatch(folder.batch);
    if (!folder.ready) setTimeout(pollReady, 1000);
  }

  async function pollReady() {
    if (document.body.dataset.view !== "folder" || !folder) return;
    try {
      const fresh = await getJson("/api/photos");
      folder.ready = fresh.ready;
      el("folder-info").textContent = folderInfo();
      if (!fresh.ready) setTimeout(pollReady, 1000);
    } catch (e) { showError(e.message); }
  }

  function folderInfo() {
    const counts = {};
    for (const p of folder.photos) counts[p.state] = (counts[p.state] || 0) + 1;
    const parts = ["not done", "colorized", "edited", "saved"].filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
    return `${folder.photos.length} photos in ${folder.photos_dir} (${parts.join(", ") || "none"}); ` +
      `saving to ${folder.output_dir}. Model: ${folder.model}${folder.guided ? "" : " (no hint inputs)"}` +
      (folder.ready ? "." : " (getting ready\u2026).");
  }

  function renderGrid() {
    const grid = el("grid");
    grid.textContent = "";
    for (const p of folder.photos) {
      const card = document.createElement("a");
      card.className = "card";
      card.href = "#photo=" + q(p.name);
      card.dataset.path = p.name;
      card.dataset.state = p.state;
      card.setAttribute("role", "listitem");
      const thumb = document.createElement("div");
      thumb.className = "thumb";
      const img = document.createElement("img");
      img.loading = "lazy";
      img.alt = p.name;
      img.src = `/api/thumb?path=${q(p.name)}&token=${q(token)}&v=${q(p.state)}`;
      thumb.appendChild(img);
      const meta = document.createElement("div");
      meta.className = "meta";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = p.name;
      name.title = p.name;
      const badge = document.createElement("span");
      badge.className = "badge state-" + p.state.replace(" ", "-");
      badge.textContent = p.state;
      meta.append(name, badge);
      card.append(thumb, meta);
      grid.appendChild(card);
    }
    el("folder-info").textContent = folderInfo();
  }

  function showBatch(status) {
    const running = status.running;
    el("batch-start").disabled = running;
    el("batch-cancel").hidden = !running;
    el("batch-progress").hidden = !running && !status.total;
    el("batch-progress").max = Math.max(1, status.total);
    el("batch-progress").value = status.done;
    let text = "";
    if (running) text = `${status.done} of ${status.total}` + (status.current ? `: ${status.current}` : "");
    else if (status.total) text = `${status.cancelled ? "Stopped" : "Done"}: ${status.done} of ${status.total}` +
      (status.failed.length ? `, ${status.failed.length} failed` : "");
    el("batch-text").textContent = text;
    el("batch-text").title = status.failed.map((f) => `${f.name}: ${f.error}`).join("\n");
    if (running && !batchTimer) {
      batchTimer = setInterval(pollBatch, 1000);
    } else if (!running && batchTimer) {
      clearInterval(batchTimer);
      batchTimer = null;
      if (document.body.dataset.view === "folder") showFolder();
    }
  }

  async function pollBatch() {
    try {
      const status = await getJson("/api/batch");
      showBatch(status);
      if (document.body.dataset.view === "folder" && status.running) {
        const fresh = await getJson("/api/photos");
        const changed = fresh.photos.some((p, i) => !folder.photos[i] || folder.photos[i].state !== p.state);
        folder = fresh;
        if (changed) renderGrid();
      }
    } catch (e) { showError(e.message); }
  }

  el("batch-start").addEventListener("click", async () => {
    try { showBatch(await (await api("POST", "/api/batch", { action: "start" })).json()); }
    catch (e) { showError(e.message); }
  });
  el("batch-cancel").addEventListener("click", async () => {
    try { await api("POST", "/api/batch", { action: "cancel" }); } catch (e) { showError(e.message); }
  });

  // ------------------------------------------------------------------ photo view

  async function openPhoto(path) {
    const mine = ++openToken;
    setView("photo");
    el("subtitle").textContent = path;
    el("loading-note").hidden = false;
    el("stage").hidden = true;
    try {
      const info = await getJson(`/api/photo?path=${q(path)}`);
      const before = await (await api("GET", `/api/before?path=${q(path)}`)).blob();
      if (mine !== openToken) return;
      photo = info;
      edit = info.edit;
      history = [JSON.stringify(edit)];
      historyIndex = 0;
      selected = -1;
      if (beforeUrl) URL.revokeObjectURL(beforeUrl);
      beforeUrl = URL.createObjectURL(before);
      el("before").src = beforeUrl;
      el("after").src = beforeUrl;   // until the first result arrives
      sampleCanvas = null;
      el("guided-note").hidden = info.guided;
      el("points-group").classList.toggle("disabled", !info.guided);
      el("reference-group").classList.toggle("disabled", !info.guided);
      el("reference-file").disabled = !info.guided;
      el("photo-state").textContent = info.state;
      el("photo-state").className = "badge state-" + info.state.replace(" ", "-");
      el("edit-from").textContent = {
        saved: "Restored the saved hints.", "photos folder": "Hints from the sidecar beside the photo.",
        draft: "Unsaved changes from earlier in this session.",
      }[info.edit_from] || "";
      el("render-info").textContent = "";
      el("loading-note").hidden = true;
      el("stage").hidden = false;
      zoom = 1;
      layout();
      syncControls();
      scheduleRender();
    } catch (e) {
      if (mine === openToken) {
        el("loading-note").hidden = true;
        showError(e.message);
      }
    }
  }

  // -- layout: fit, zoom, the before/after split

  function layout() {
    if (!photo) return;
    const viewport = el("viewport");
    const availW = Math.max(100, viewport.clientWidth - 24), availH = Math.max(100, viewport.clientHeight - 24);
    const fit = Math.min(availW / photo.preview_width, availH / photo.preview_height);
    const w = Math.round(photo.preview_width * fit * zoom), h = Math.round(photo.preview_height * fit * zoom);
    const stage = el("stage");
    stage.style.width = w + "px";
    stage.style.height = h + "px";
    el("zoom-level").textContent = zoom === 1 ? "fit" : `${Math.round(zoom * 100)} %`;
    drawPoints();
  }

  function setZoom(value, anchor) {
    const viewport = el("viewport");
    const old = zoom;
    zoom = Math.min(MAX_ZOOM, Math.max(1, value));
    const ax = anchor ? anchor.x : viewport.clientWidth / 2, ay = anchor ? anchor.y : viewport.clientHeight / 2;
    const fx = (viewport.scrollLeft + ax) / old, fy = (viewport.scrollTop + ay) / old;
    layout();
    viewport.scrollLeft = fx * zoom - ax;
    viewport.scrollTop = fy * zoom - ay;
  }

  function setSplit(percent) {
    split = Math.min(100, Math.max(0, percent));
    el("before").style.clipPath = `inset(0 ${100 - split}% 0 0)`;
    el("divider").style.left = split + "%";
    el("split").value = String(Math.round(split));
  }

  el("split").addEventListener("input", () => setSplit(Number(el("split").value)));
  el("zoom-in").addEventListener("click", () => setZoom(zoom * 1.5));
  el("zoom-out").addEventListener("click", () => setZoom(zoom / 1.5));
  el("zoom-fit").addEventListener("click", () => setZoom(1));
  window.addEventListener("resize", layout);
  el("viewport").addEventListener("wheel", (event) => {
    if (!event.ctrlKey || !photo) return;
    event.preventDefault();
    const box = el("viewport").getBoundingClientRect();
    setZoom(zoom * (event.deltaY < 0 ? 1.25 : 0.8), { x: event.clientX - box.left, y: event.clientY - box.top });
  }, { passive: false });

  // -- points

  function photoXY(event) {
    const box = el("stage").getBoundingClientRect();
    const fx = Math.min(0.99999, Math.max(0, (event.clientX - box.left) / box.width));
    const fy = Math.min(0.99999, Math.max(0, (event.clientY - box.top) / box.height));
    return { x: Math.round(fx * photo.width * 100) / 100, y: Math.round(fy * photo.height * 100) / 100, fx, fy };
  }

  function drawPoints() {
    const layer = el("points");
    layer.textContent = "";
    if (!photo) return;
    const grid = photo.image_size;
    edit.points.forEach((p, i) => {
      const node = document.createElement("div");
      node.className = "point" + (i === selected ? " selected" : "");
      node.style.left = (100 * p.x / photo.width) + "%";
      node.style.top = (100 * p.y / photo.height) + "%";
      node.dataset.index = String(i);
      const patch = document.createElement("div");
      patch.className = "patch";
      const stage = el("stage");
      patch.style.width = (p.size / grid * stage.clientWidth) + "px";
      patch.style.height = (p.size / grid * stage.clientHeight) + "px";
      const dot = document.createElement("div");
      dot.className = "dot";
      dot.style.background = p.color;
      dot.dataset.index = String(i);
      dot.title = `${p.color}, size ${p.size}`;
      node.append(patch, dot);
      layer.appendChild(node);
    });
    el("point-count").textContent = String(edit.points.length);
    el("points-clear").disabled = !edit.points.length;
    const point = edit.points[selected];
    el("point-editor").hidden = !point;
    if (point) {
      el("point-color").value = point.color;
      el("point-size").value = String(point.size);
      el("point-size-value").textContent = String(point.size);
    }
  }

  function sampleColor(fx, fy) {
    const img = el("after");
    if (!img.naturalWidth) return "#808080";
    if (!sampleCanvas) {
      sampleCanvas = document.createElement("canvas");
      sampleCanvas.width = img.naturalWidth;
      sampleCanvas.height = img.naturalHeight;
      sampleCanvas.getContext("2d", { willReadFrequently: true }).drawImage(img, 0, 0);
    }
    const x = Math.floor(fx * sampleCanvas.width), y = Math.floor(fy * sampleCanvas.height);
    const r = 2, d = sampleCanvas.getContext("2d").getImageData(Math.max(0, x - r), Math.max(0, y - r), 2 * r + 1, 2 * r + 1).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
    const n = d.length / 4;
    return "#" + sum.map((v) => Math.round(v / n).toString(16).padStart(2, "0")).join("");
  }

  function addPoint(event) {
    if (!photo.guided) { showError("This model takes no hints: start kc-studio with a guided model."); return; }
    const at = photoXY(event);
    const color = sampleColor(at.fx, at.fy);
    edit.points.push({ x: at.x, y: at.y, color, size: Number(el("point-size").value) });
    selected = edit.points.length - 1;
    drawPoints();
    commit();
    scheduleRender();
    const picker = el("point-color");
    try { if (picker.showPicker && !navigator.webdriver) picker.showPicker(); } catch (_) { /* no picker here */ }
  }

  function removePoint(index) {
    if (index < 0 || index >= edit.points.length) return;
    edit.points.splice(index, 1);
    selected = -1;
    drawPoints();
    commit();
    scheduleRender();
  }

  // One pointer gesture on the stage: drag the divider, drag a point, or a click that adds a point.
  let gesture = null;
  el("stage").addEventListener("pointerdown", (event) => {
    if (!photo || event.button !== 0) return;
    const target = event.target;
    if (target.closest("#divider")) {
      gesture = { kind: "divider" };
    } else if (target.classList.contains("dot")) {
      selected = Number(target.dataset.index);
      drawPoints();
      gesture = { kind: "point", index: selected, moved: false, x0: event.clientX, y0: event.clientY };
    } else {
      gesture = { kind: "click", x0: event.clientX, y0: event.clientY };
    }
    el("stage").setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  el("stage").addEventListener("pointermove", (event) => {
    if (!gesture) return;
    if (gesture.kind === "divider") {
      const box = el("stage").getBoundingClientRect();
      setSplit(100 * (event.clientX - box.left) / box.width);
    } else if (gesture.kind === "point") {
      if (!gesture.moved && Math.hypot(event.clientX - gesture.x0, event.clientY - gesture.y0) < 3) return;
      gesture.moved = true;
      const at = photoXY(event);
      Object.assign(edit.points[gesture.index], { x: at.x, y: at.y });
      drawPoints();
      scheduleRender();
    }
  });
  el("stage").addEventListener("pointerup", (event) => {
    const done = gesture;
    gesture = null;
    if (!done || !photo) return;
    if (done.kind === "point" && done.moved) commit();
    if (done.kind === "click" && Math.hypot(event.clientX - done.x0, event.clientY - done.y0) < 5) addPoint(event);
  });
  el("stage").addEventListener("pointercancel", () => { gesture = null; });
  el("stage").addEventListener("contextmenu", (event) => {
    if (event.target.classList.contains("dot")) {
      event.preventDefault();
      removePoint(Number(event.target.dataset.index));
    }
  });

  el("point-color").addEventListener("input", () => {
    const point = edit && edit.points[selected];
    if (!point) return;
    point.color = el("point-color").value;
    drawPoints();
    scheduleRender();
  });
  el("point-color").addEventListener("change", () => { if (edit && edit.points[selected]) commit(); });
  el("point-size").addEventListener("input", () => {
    el("point-size-value").textContent = el("point-size").value;
    const point = edit && edit.points[selected];
    if (!point) return;
    point.size = Number(el("point-size").value);
    drawPoints();
    scheduleRender();
  });
  el("point-size").addEventListener("change", () => { if (edit && edit.points[selected]) commit(); });
  el("point-delete").addEventListener("click", () => removePoint(selected));
  el("points-clear").addEventListener("click", () => {
    edit.points = [];
    selected = -1;
    drawPoints();
    commit();
    scheduleRender();
  });

  // -- reference photo

  async function useReference(file) {
    if (!photo) return;
    if (!photo.guided) { showError("This model takes no hints: start kc-studio with a guided model."); return; }
    try {
      el("reference-note").textContent = "Uploading the reference\u2026";
      const stored = await (await api("POST", "/api/reference", file, file.type || "application/octet-stream")).json();
      edit.reference = stored.id;
      commit();
      syncControls();
      scheduleRender();
    } catch (e) {
      showError(e.message);
      syncControls();
    }
  }

  async function showReferenceThumb() {
    const img = el("reference-thumb");
    if (!edit.reference) { img.hidden = true; return; }
    img.src = `/api/reference?id=${q(edit.reference)}&token=${q(token)}`;
    img.hidden = false;
  }

  el("reference-file").addEventListener("change", () => {
    const file = el("reference-file").files[0];
    el("reference-file").value = "";
    if (file) useReference(file);
  });
  el("reference-remove").addEventListener("click", () => {
    edit.reference = null;
    commit();
    syncControls();
    scheduleRender();
  });
  let dragDepth = 0;
  window.addEventListener("dragenter", (event) => { event.preventDefault(); dragDepth++; document.body.classList.add("dragging"); });
  window.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; document.body.classList.remove("dragging"); } });
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    document.body.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file && document.body.dataset.view === "photo") useReference(file);
  });

  // -- saturation

  el("saturation").addEventListener("input", () => {
    if (!edit) return;
    edit.saturation = Number(el("saturation").value) / 100;
    el("saturation-value").textContent = `${el("saturation").value} %`;
    scheduleRender();
  });
  el("saturation").addEventListener("change", () => { if (edit) commit(); });

  // -- undo / redo

  function commit() {
    const snapshot = JSON.stringify(edit);
    if (history[historyIndex] === snapshot) return;
    history = history.slice(0, historyIndex + 1);
    history.push(snapshot);
    historyIndex = history.length - 1;
    syncHistory();
  }

  function travel(step) {
    const index = historyIndex + step;
    if (!photo || index < 0 || index >= history.length) return;
    historyIndex = index;
    edit = JSON.parse(history[index]);
    selected = -1;
    syncControls();
    scheduleRender();
  }

  function syncHistory() {
    el("undo").disabled = historyIndex <= 0;
    el("redo").disabled = historyIndex >= history.length - 1;
  }

  function syncControls() {
    el("saturation").value = String(Math.round(edit.saturation * 100));
    el("saturation-value").textContent = `${Math.round(edit.saturation * 100)} %`;
    el("reference-remove").hidden = !edit.reference;
    el("reference-note").textContent = edit.reference ? "Reference photo: its palette steers the whole photo." : "";
    if (!edit.reference) {
      const note = el("reference-note");
      note.textContent = "Drop a colour photo here, or ";
      const label = document.createElement("label");
      label.className = "link";
      label.textContent = "choose one";
      label.htmlFor = "reference-file";
      note.append(label, ": its palette steers the whole photo.");
    }
    showReferenceThumb();
    drawPoints();
    syncHistory();
  }

  el("undo").addEventListener("click", () => travel(-1));
  el("redo").addEventListener("click", () => travel(1));

  // -- rendering: at most one request in flight; the latest edit wins

  function scheduleRender() {
    renderGen++;
    el("stage").dataset.pending = String(renderGen - shownGen);
    if (!rendering) renderLoop();
  }

  async function renderLoop() {
    rendering = true;
    while (photo && shownGen !== renderGen) {
      const gen = renderGen, path = photo.path, began = performance.now();
      try {
        const response = await api("POST", "/api/render", { path, edit });
        const blob = await response.blob();
        if (!photo || photo.path !== path) break;
        const url = URL.createObjectURL(blob);
        const img = el("after");
        img.src = url;
        await img.decode();
        if (afterUrl) URL.revokeObjectURL(afterUrl);
        afterUrl = url;
        sampleCanvas = null;
        shownGen = gen;
        const state = decodeURIComponent(response.headers.get("X-KC-State") || "");
        el("photo-state").textContent = state;
        el("photo-state").className = "badge state-" + state.replace(" ", "-");
        el("render-info").textContent = `Updated in ${((performance.now() - began) / 1000).toFixed(2)} s.`;
      } catch (e) {
        showError(e.message);
        shownGen = gen;   // do not retry the same edit forever
      }
      el("stage").dataset.pending = String(renderGen - shownGen);
      el("stage").dataset.shown = String(shownGen);
    }
    rendering = false;
  }

  // -- save

  async function save() {
    if (!photo) return;
    el("save").disabled = true;
    el("render-info").textContent = "Saving at full resolution\u2026";
    try {
      const result = await (await api("POST", "/api/save", { path: photo.path, edit })).json();
      el("photo-state").textContent = result.state;
      el("photo-state").className = "badge state-" + result.state.replace(" ", "-");
      el("render-info").textContent = `Saved ${result.output} and ${result.sidecar}.`;
      document.body.dataset.saved = photo.path;
    } catch (e) {
      showError(e.message);
      el("render-info").textContent = "";
    } finally {
      el("save").disabled = false;
    }
  }
  el("save").addEventListener("click", save);

  // -- keys

  document.addEventListener("keydown", (event) => {
    if (document.body.dataset.view !== "photo") return;
    const typing = event.target.matches("input[type=text], input[type=number], textarea");
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.key.toLowerCase() === "z") { event.preventDefault(); travel(event.shiftKey ? 1 : -1); }
    else if (mod && event.key.toLowerCase() === "y") { event.preventDefault(); travel(1); }
    else if (mod && event.key.toLowerCase() === "s") { event.preventDefault(); save(); }
    else if (typing || mod) return;
    else if ((event.key === "Delete" || event.key === "Backspace") && selected >= 0) { event.preventDefault(); removePoint(selected); }
    else if (event.key === "Escape") { if (selected >= 0) { selected = -1; drawPoints(); } else location.hash = ""; }
    else if (event.key === "+" || event.key === "=") setZoom(zoom * 1.5);
    else if (event.key === "-") setZoom(zoom / 1.5);
    else if (event.key === "0") setZoom(1);
  });

  el("back").addEventListener("click", () => { location.hash = ""; });
  window.addEventListener("hashchange", route);
  setSplit(50);
  route();
})();
