// The review page: answers SAM-QA's questions during a run (live) and fixes labels after it (review).
// Boxes are kept in image pixels; the canvas shows the frame scaled by `scale`.
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const S = { mode: "", width: 0, height: 0, total: 0, palette: [], scale: 1, board: null,
  frame: 0, boxes: [], original: [], previous: [], failed: {}, selected: -1, pendingId: 0, image: null,
  drag: null, busy: false, lastAnswered: 0, timings: [], submitAt: 0 };
window.samqa = S;  // read by the tests and the benchmark

function url(path, params = {}) {
  const q = new URLSearchParams({ ...params, token: TOKEN });
  return `${path}?${q}`;
}
async function api(path, params = {}, body = undefined) {
  const opts = body === undefined ? {} : { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } };
  const r = await fetch(url(path, params), opts);
  if (r.status === 204) return null;
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : { error: await r.text() };
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}
function status(text, error = false) { const el = $("status"); el.textContent = text; el.className = error ? "error" : ""; }
function colour(id, alpha = 1) { const [r, g, b] = S.palette[(id - 1) % S.palette.length]; return `rgba(${r},${g},${b},${alpha})`; }
const copyBoxes = (list) => list.map((b) => ({ id: b.id, box: b.box.slice() }));
const round1 = (v) => Math.round(v * 10) / 10;

function loadImage(frame) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`frame ${frame} could not be loaded`));
    img.src = url("/api/frame.jpg", { frame, v: Date.now() });
  });
}

// -- drawing -------------------------------------------------------------------------------------------------------
function draw() {
  const c = $("frame"), ctx = c.getContext("2d"), s = S.scale;
  ctx.clearRect(0, 0, c.width, c.height);
  if (S.image) ctx.drawImage(S.image, 0, 0, c.width, c.height);
  ctx.setLineDash([4, 4]);
  for (const p of S.previous) {  // the previous frame's labels, dashed
    ctx.strokeStyle = colour(p.id, 0.7); ctx.lineWidth = 1;
    ctx.strokeRect(p.box[0] * s, p.box[1] * s, (p.box[2] - p.box[0]) * s, (p.box[3] - p.box[1]) * s);
  }
  ctx.setLineDash([]);
  S.boxes.forEach((b, k) => {
    const [x1, y1, x2, y2] = b.box.map((v) => v * s);
    ctx.strokeStyle = colour(b.id); ctx.lineWidth = k === S.selected ? 3 : 2;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillStyle = colour(b.id); ctx.font = "bold 16px system-ui";
    ctx.fillText(String(b.id), x1 + 3, y1 + 16);
    if (k === S.selected) for (const [hx, hy] of [[x1, y1], [x2, y1], [x1, y2], [x2, y2]]) ctx.fillRect(hx - 4, hy - 4, 8, 8);
  });
  if (S.drag && S.drag.kind === "draw") {
    const [x1, y1, x2, y2] = S.drag.box.map((v) => v * s);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1; ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  const list = $("boxes"); list.replaceChildren();
  S.boxes.forEach((b, k) => {
    const li = document.createElement("li"), sw = document.createElement("span");
    sw.className = "swatch"; sw.style.background = colour(b.id);
    li.append(sw, `id ${b.id}: [${b.box.map(round1).join(", ")}]`);
    if (k === S.selected) li.className = "selected";
    li.onclick = () => { S.selected = k; draw(); };
    list.append(li);
  });
  drawTimeline();
}

function drawTimeline() {
  const c = $("timeline"), ctx = c.getContext("2d"), b = S.board;
  ctx.clearRect(0, 0, c.width, c.height);
  if (!b || !S.total) return;
  const w = c.width / S.total, fill = { a: "#9c9", r: "#e90", m: "#38c", s: "#ddd" };
  for (let i = 0; i < b.source.length; i++) { ctx.fillStyle = fill[b.source[i]]; ctx.fillRect(i * w, 8, Math.max(w, 1), 20); }
  ctx.fillStyle = "#d00";
  for (const f of Object.keys(b.flags)) ctx.fillRect((f - 1) * w, 0, Math.max(w, 1), 7);
  ctx.fillStyle = "#a3c";
  for (const f of b.corrected) ctx.fillRect((f - 1) * w, 29, Math.max(w, 1), 7);
  if (S.frame) { ctx.fillStyle = "#000"; ctx.fillRect((S.frame - 1) * w, 0, Math.max(w, 2), c.height); }
}

// -- editing -------------------------------------------------------------------------------------------------------
function imagePoint(ev) {
  const r = $("frame").getBoundingClientRect();
  return [Math.min(Math.max((ev.clientX - r.left) / S.scale, 0), S.width),
          Math.min(Math.max((ev.clientY - r.top) / S.scale, 0), S.height)];
}
function freeId() { const used = new Set(S.boxes.map((b) => b.id)); let i = 1; while (used.has(i)) i++; return i; }
function hit(p) {
  const tol = 6 / S.scale;
  if (S.selected >= 0) {
    const [x1, y1, x2, y2] = S.boxes[S.selected].box;
    const corners = [[x1, y1], [x2, y1], [x1, y2], [x2, y2]];
    for (let k = 0; k < 4; k++) if (Math.abs(p[0] - corners[k][0]) <= tol && Math.abs(p[1] - corners[k][1]) <= tol)
      return { kind: "resize", index: S.selected, corner: k };
  }
  for (let k = S.boxes.length - 1; k >= 0; k--) {
    const [x1, y1, x2, y2] = S.boxes[k].box;
    if (p[0] >= x1 && p[0] <= x2 && p[1] >= y1 && p[1] <= y2) return { kind: "move", index: k };
  }
  return { kind: "draw" };
}
function onDown(ev) {
  $("frame").focus();
  const p = imagePoint(ev), h = hit(p);
  S.drag = { ...h, start: p, box: h.kind === "draw" ? [p[0], p[1], p[0], p[1]] : S.boxes[h.index].box.slice() };
  if (h.kind !== "draw") S.selected = h.index;
  draw();
}
function onMove(ev) {
  if (!S.drag) return;
  const p = imagePoint(ev), d = S.drag, dx = p[0] - d.start[0], dy = p[1] - d.start[1];
  if (d.kind === "draw") d.box = [d.start[0], d.start[1], p[0], p[1]];
  else if (d.kind === "move") {
    const b = d.box, w = b[2] - b[0], h = b[3] - b[1];
    const x1 = Math.min(Math.max(b[0] + dx, 0), S.width - w), y1 = Math.min(Math.max(b[1] + dy, 0), S.height - h);
    S.boxes[d.index].box = [x1, y1, x1 + w, y1 + h];
  } else {
    const b = d.box.slice(), xi = d.corner % 2 === 0 ? 0 : 2, yi = d.corner < 2 ? 1 : 3;
    b[xi] = p[0]; b[yi] = p[1];
    S.boxes[d.index].box = [Math.min(b[0], b[2]), Math.min(b[1], b[3]), Math.max(b[0], b[2]), Math.max(b[1], b[3])];
  }
  draw();
}
function onUp(ev) {
  if (!S.drag) return;
  onMove(ev);
  const d = S.drag; S.drag = null;
  if (d.kind === "draw") {
    const b = [Math.min(d.box[0], d.box[2]), Math.min(d.box[1], d.box[3]), Math.max(d.box[0], d.box[2]), Math.max(d.box[1], d.box[3])];
    if (b[2] - b[0] >= 2 && b[3] - b[1] >= 2) {
      const id = S.pendingId || freeId();
      S.boxes = S.boxes.filter((x) => x.id !== id);  // a box drawn for an identity replaces its old one
      S.boxes.push({ id, box: b.map(round1) });
      S.selected = S.boxes.length - 1; S.pendingId = 0;
    } else S.selected = -1;
  } else S.boxes[d.index].box = S.boxes[d.index].box.map(round1);
  draw();
}
function setId(id) {
  if (S.selected < 0) { S.pendingId = id; status(`next box drawn gets id ${id}`); return; }
  const other = S.boxes.findIndex((b, k) => b.id === id && k !== S.selected);
  if (other >= 0) S.boxes[other].id = S.boxes[S.selected].id;  // two boxes never share an identity: they swap
  S.boxes[S.selected].id = id;
  draw();
}
function onKey(ev) {
  if (ev.target.tagName === "INPUT") return;
  if (ev.key === "Enter") { ev.preventDefault(); submit(); }
  else if (/^[1-9]$/.test(ev.key)) setId(Number(ev.key));
  else if (ev.key === "Delete" || ev.key === "Backspace") {
    if (S.selected >= 0) { S.boxes.splice(S.selected, 1); S.selected = -1; draw(); }
  } else if (ev.key === "c") { S.boxes = copyBoxes(S.previous); S.selected = -1; draw(); }
  else if (ev.key === "Escape") { S.selected = -1; draw(); }
  else if (S.mode === "review" && ev.key === "ArrowLeft") goto(S.frame - 1);
  else if (S.mode === "review" && ev.key === "ArrowRight") goto(S.frame + 1);
}

// -- live: questions of a running annotation --------------------------------------------------------------------------
async function show(q) {
  S.frame = q.frame; S.boxes = copyBoxes(q.proposed); S.original = copyBoxes(q.proposed);
  S.previous = q.previous; S.failed = q.failed; S.selected = -1;
  S.image = await loadImage(q.frame);
  $("title").textContent = `frame ${q.frame} needs you`;
  const why = Object.entries(q.failed).map(([id, r]) => (id === "0" ? `frame: ${r}` : `id ${id}: ${r}`));
  $("why").textContent = why.length ? `failed checks: ${why.join("; ")}` : (q.proposed.length ? "" : "no proposal: draw the boxes");
  draw();
  if (S.submitAt) S.timings.push({ frame: q.frame, submit_to_shown_ms: performance.now() - S.submitAt });
  S.submitAt = 0;
  status(`frame ${q.frame}: Enter accepts ${S.boxes.length} box(es)`);
}
async function poll() {
  for (;;) {
    try {
      const q = await api("/api/question", { after: S.lastAnswered, wait: 10 });
      if (q) { await show(q); return; }
      const st = await api("/api/state");
      if (st.closed) { status("annotation finished: nothing more to answer"); return; }
    } catch (e) { status(`the annotation process is gone (${e.message})`, true); return; }
  }
}

// -- review: any frame of a finished run ---------------------------------------------------------------------------
async function goto(frame) {
  frame = Math.min(Math.max(Number(frame) || 1, 1), Math.max(S.board ? S.board.stored : 1, 1));
  const [lab, prev, img] = await Promise.all([api("/api/labels", { frame }),
    frame > 1 ? api("/api/labels", { frame: frame - 1 }) : { instances: [] }, loadImage(frame)]);
  S.frame = frame; S.image = img; S.boxes = copyBoxes(lab.instances); S.original = copyBoxes(lab.instances);
  S.previous = prev.instances; S.selected = -1; $("jump").value = frame;
  $("title").textContent = `frame ${frame} of ${S.total}`;
  const flag = S.board.flags[frame];
  $("why").textContent = flag ? `QA flag: ${flag}` : "";
  draw();
}
async function reloadBoard() { S.board = await api("/api/board"); }
function changes() {
  const ops = [], now = new Map(S.boxes.map((b) => [b.id, b.box])), before = new Map(S.original.map((b) => [b.id, b.box]));
  for (const id of before.keys()) if (!now.has(id)) ops.push({ op: "remove", frame: S.frame, id });
  for (const [id, box] of now) {
    const old = before.get(id);
    if (!old || old.some((v, k) => Math.abs(v - box[k]) > 0.01)) ops.push({ op: "box", frame: S.frame, id, box });
  }
  return ops;
}

async function submit() {
  if (S.busy || !S.frame) return;
  S.busy = true;
  try {
    if (S.mode === "live") {
      S.submitAt = performance.now();
      await api("/api/answer", {}, { frame: S.frame, boxes: S.boxes });
      S.lastAnswered = S.frame;
      status(`frame ${S.frame} answered; annotating…`);
      $("title").textContent = "annotating…";
      poll();
    } else {
      const ops = changes();
      for (const op of ops) await api("/api/correct", {}, op);
      await reloadBoard(); await goto(S.frame);
      status(ops.length ? `frame ${S.frame}: ${ops.length} correction(s) saved` : "nothing changed");
    }
  } catch (e) { status(e.message, true); } finally { S.busy = false; }
}
async function swap() {
  const a = Number($("swap-a").value), b = Number($("swap-b").value);
  try {
    await api("/api/correct", {}, { op: "swap", frame: S.frame, ids: [a, b] });
    await reloadBoard(); await goto(S.frame);
    status(`ids ${a} and ${b} swapped from frame ${S.frame} to the end`);
  } catch (e) { status(e.message, true); }
}

async function init() {
  try {
    const st = await api("/api/state");
    Object.assign(S, { mode: st.mode, width: st.width, height: st.height, total: st.total, palette: st.palette });
    S.scale = Math.min(960 / st.width, 640 / st.height);
    const c = $("frame"); c.width = Math.round(st.width * S.scale); c.height = Math.round(st.height * S.scale);
    c.style.width = `${c.width}px`; c.style.height = `${c.height}px`;
    $("timeline").width = c.width;
    $("sequence").textContent = st.sequence; $("mode").textContent = st.mode === "live" ? "answering questions" : "reviewing labels";
    document.body.classList.add(st.mode);
    c.addEventListener("mousedown", onDown); window.addEventListener("mousemove", onMove); window.addEventListener("mouseup", onUp);
    document.addEventListener("keydown", onKey);
    $("submit").onclick = submit; $("swap").onclick = swap;
    $("go").onclick = () => goto($("jump").value);
    $("prev").onclick = () => goto(S.frame - 1); $("next").onclick = () => goto(S.frame + 1);
    $("next-flag").onclick = () => {
      const next = Object.keys(S.board.flags).map(Number).sort((x, y) => x - y).find((f) => f > S.frame);
      if (next) goto(next); else status("no flagged frame after this one");
    };
    $("timeline").onclick = (ev) => {
      const r = ev.target.getBoundingClientRect();
      goto(Math.floor((ev.clientX - r.left) / r.width * S.total) + 1);
    };
    if (st.mode === "live") { status("waiting for the next question…"); poll(); }
    else { await reloadBoard(); await goto(1); status("click the timeline or type a frame; Enter saves the frame's boxes"); }
  } catch (e) { status(e.message, true); }
}
document.addEventListener("DOMContentLoaded", init);
