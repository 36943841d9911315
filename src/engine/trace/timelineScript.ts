/**
 * The timeline's page script, shared by the run report (a static snapshot) and the editor's
 * live "ModelOps Timeline" webview (a snapshot, then updates by message). It draws a
 * `TimelineUpdate` (timeline.ts) on a canvas: a lane per runner slot, tasks as bars coloured by
 * state or by parameter set, running tasks growing to the latest event, crashes, timeouts,
 * retries and stdout pollution as marks, the gaps between tasks left empty (idle). Wheel zooms,
 * drag pans, hover shows the task, a click on a bar asks the editor to open it.
 *
 * A lane's tasks are kept in start order (the model never lets them overlap), so a frame finds
 * the visible ones by binary search; zoomed out, the tasks that fall in one pixel column are
 * drawn once, as the worst state among them, so 100 000 tasks draw as fast as a few hundred.
 * Live updates are drawn at most ten times a second.
 *
 * The host page supplies `<div id="timeline-root">`, the data in
 * `<script type="application/json" id="timeline-data">`, and the colours as CSS variables:
 * --fg, --bg, --muted, --line, --ok, --bad, --other, --run.
 */
export const TIMELINE_SCRIPT = `
(function () {
  'use strict';
  var FIELDS = 7, RUN_FIELDS = 5, LEFT = 190, LANE = 22, TOP = 22, MIN_FRAME_MS = 100;
  var vscode = typeof acquireVsCodeApi === 'function' ? acquireVsCodeApi() : undefined;
  var root = document.getElementById('timeline-root');
  root.innerHTML = '<div class="tl-bar"><button id="tl-fit" title="Show the whole run">Fit</button>' +
    '<label>Colour by <select id="tl-colour"><option value="state">state</option><option value="set">parameter set</option></select></label>' +
    '<span id="tl-status"></span></div><canvas id="tl-canvas"></canvas><div id="tl-tip"></div>';
  var canvas = document.getElementById('tl-canvas'), tip = document.getElementById('tl-tip');
  var statusText = document.getElementById('tl-status'), colourBy = document.getElementById('tl-colour');
  var ctx = canvas.getContext('2d');
  var css = getComputedStyle(document.documentElement);
  function colour(name) { return css.getPropertyValue(name).trim() || '#888'; }

  // the model: every finished task (flat numbers), each lane's task indices in start order
  var job = '', start = 0, now = 0, ready = 0, ended = false, lanes = [], sets = [], tasks = [], notes = {}, running = [];
  var marks = [], byLane = [], busy = [], received = 0, updates = 0, states = ['ok', 'failed', 'other', 'running'];
  var view = { from: 0, to: 1 }, follow = true;
  var stats = { frames: 0, lastMs: 0, maxMs: 0, totalMs: 0, updates: 0, tasks: 0, lanes: 0, running: 0, ended: false };
  window.timelineStats = stats;
  // every frame's time, for benchmarks that read the page (not sent to the editor)
  var frameTimes = (window.timelineFrameTimes = []);

  function apply(update) {
    if (update.reset) {
      tasks = []; notes = {}; marks = []; byLane = []; busy = []; sets = update.sets || []; job = update.job_id;
      states = update.states || states;
    }
    start = update.start; now = update.now; ready = update.ready || 0; ended = update.ended; lanes = update.lanes; running = update.running;
    received = performance.now(); updates++;
    var first = tasks.length / FIELDS;
    for (var i = 0; i < update.tasks.length; i++) tasks.push(update.tasks[i]);
    for (var k in update.notes) notes[k] = update.notes[k];
    for (var m = 0; m < update.marks.length; m++) marks.push(update.marks[m]);
    for (var n = first; n < tasks.length / FIELDS; n++) {
      var lane = tasks[n * FIELDS];
      (byLane[lane] = byLane[lane] || []).push(n);
      busy[lane] = (busy[lane] || 0) + tasks[n * FIELDS + 2];
    }
    if (follow) { view.from = 0; view.to = Math.max(1, now); }
    schedule(false);
  }

  // frames: one per animation frame for the user's gestures, at most ten a second for updates
  var pending = false, lastFrame = 0;
  function schedule(immediate) {
    if (pending) return;
    pending = true;
    var wait = immediate ? 0 : Math.max(0, MIN_FRAME_MS - (performance.now() - lastFrame));
    setTimeout(function () { requestAnimationFrame(function () { pending = false; draw(); }); }, wait);
  }

  function fill(state, set) {
    if (colourBy.value === 'set' && state !== 3) return 'hsl(' + ((set * 137.508) % 360) + ', 55%, ' + (state === 1 ? '40%' : '58%') + ')';
    return [colour('--ok'), colour('--bad'), colour('--other'), colour('--run')][state];
  }

  /** The first task of a lane that ends at or after \`t\` (its tasks are in start order and do not overlap). */
  function firstEnding(list, t) {
    var lo = 0, hi = list.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1, i = list[mid] * FIELDS;
      if (tasks[i + 1] + tasks[i + 2] < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function draw() {
    var began = performance.now();
    lastFrame = began;
    var width = Math.max(200, canvas.clientWidth), height = TOP + Math.max(1, lanes.length) * LANE + 6;
    canvas.style.height = height + 'px';
    canvas.width = width * devicePixelRatio; canvas.height = height * devicePixelRatio;
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';
    var plot = width - LEFT - 8, span = Math.max(1e-3, view.to - view.from), scale = plot / span;
    var muted = colour('--muted'), line = colour('--line');
    for (var l = 0; l < lanes.length; l++) {
      var y = TOP + l * LANE;
      ctx.fillStyle = line; ctx.fillRect(LEFT, y + LANE - 1, plot, 1);
      var share = now > 0 && busy[l] ? ' · ' + Math.round((busy[l] / now) * 100) + ' %' : '';
      ctx.fillStyle = muted; ctx.fillText(clip(lanes[l], 26) + share, 4, y + 14);
      var list = byLane[l] || [], lastPx = -1, lastState = -1;
      for (var j = firstEnding(list, view.from); j < list.length; j++) {
        var i = list[j] * FIELDS, t0 = tasks[i + 1];
        if (t0 > view.to) break;
        var x0 = (t0 - view.from) * scale, w = tasks[i + 2] * scale, state = tasks[i + 3];
        if (w < 1) {
          // one pixel column, drawn once, in the worst state of its tasks (failed over other over ok)
          var px = Math.floor(x0), rank = state === 1 ? 2 : state === 2 ? 1 : 0;
          if (px === lastPx && rank <= lastState) continue;
          lastPx = px; lastState = rank; x0 = px; w = 1;
        }
        ctx.fillStyle = fill(state, tasks[i + 4]);
        ctx.fillRect(LEFT + Math.max(0, x0), y + 3, Math.min(w, plot - Math.max(0, x0)), LANE - 6);
      }
    }
    var head = live();
    for (var r = 0; r < running.length; r += RUN_FIELDS) {
      var rx0 = Math.max(0, (running[r + 1] - view.from) * scale), rx1 = Math.min(plot, (head - view.from) * scale);
      if (rx1 < 0 || rx0 > plot) continue;
      ctx.fillStyle = fill(3, running[r + 2]);
      ctx.fillRect(LEFT + rx0, TOP + running[r] * LANE + 3, Math.max(1, rx1 - rx0), LANE - 6);
    }
    for (var q = 0; q < marks.length; q++) {
      var mark = marks[q], mx = (mark.t - view.from) * scale;
      if (mx < 0 || mx > plot) continue;
      ctx.fillStyle = mark.kind === 'retry' ? colour('--other') : mark.kind === 'stdout pollution' ? colour('--run') : colour('--bad');
      var my = TOP + mark.lane * LANE;
      ctx.beginPath(); ctx.moveTo(LEFT + mx - 4, my); ctx.lineTo(LEFT + mx + 4, my); ctx.lineTo(LEFT + mx, my + 6); ctx.fill();
    }
    // before the first runner started the job prepared (its venv, its runners): said, not left blank
    if (ready > view.from) {
      var rx = Math.min(plot, (ready - view.from) * scale);
      ctx.fillStyle = line; ctx.globalAlpha = 0.35; ctx.fillRect(LEFT, TOP, rx, lanes.length * LANE); ctx.globalAlpha = 1;
      ctx.fillStyle = muted;
      if (rx > 90) ctx.fillText('preparing (venv, runners)', LEFT + 4, TOP + lanes.length * LANE - 6);
    }
    // the time axis: a tick every 1, 2 or 5 × 10^k ms, about every 100 px
    ctx.fillStyle = muted;
    var step = Math.pow(10, Math.floor(Math.log10(span / Math.max(1, plot / 100)))), factor = span / Math.max(1, plot / 100) / step;
    step *= factor > 5 ? 10 : factor > 2 ? 5 : factor > 1 ? 2 : 1;
    for (var tick = Math.ceil(view.from / step) * step; tick <= view.to; tick += step) {
      var tx = LEFT + (tick - view.from) * scale, label = seconds(tick, step);
      ctx.fillRect(tx, TOP - 4, 1, 4);
      if (tx + ctx.measureText(label).width < width) ctx.fillText(label, tx + 2, 12);
    }
    var count = tasks.length / FIELDS;
    statusText.textContent = count + ' tasks' + (running.length ? ', ' + running.length / RUN_FIELDS + ' running' : '') +
      ', ' + lanes.length + ' lanes' + (ended ? '' : ' · live');
    var took = performance.now() - began;
    if (frameTimes.length < 100000) frameTimes.push(took);
    stats.frames++; stats.lastMs = took; stats.maxMs = Math.max(stats.maxMs, took); stats.totalMs += took;
    stats.updates = updates; stats.tasks = count; stats.lanes = lanes.length; stats.running = running.length / RUN_FIELDS;
    stats.ended = ended;
    if (vscode) vscode.postMessage({ type: 'drawn', stats: stats });
  }

  /** The latest event's time, moved on by the wall clock while the job runs (running bars grow). */
  function live() { return ended ? now : now + Math.min(1000, performance.now() - received); }
  /** A time for people; \`step\`: the axis's, so its labels show no more digits than it moves by. */
  function seconds(ms, step) {
    var digits = step === undefined ? (ms < 10000 ? 3 : 1) : Math.max(0, Math.min(3, Math.ceil(-Math.log10(step / 1000))));
    return (ms / 1000).toFixed(digits) + ' s';
  }
  function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + '…' : text; }

  /** The bar under the pointer: { set, replicate, attempt, state, start, ms, note } or undefined. */
  function hit(e) {
    var rect = canvas.getBoundingClientRect(), scale = (view.to - view.from) / (rect.width - LEFT - 8);
    var lane = Math.floor((e.clientY - rect.top - TOP) / LANE), x = e.clientX - rect.left - LEFT;
    if (lane < 0 || lane >= lanes.length || x < 0) return undefined;
    var t = view.from + x * scale, slop = 2 * scale;
    for (var r = 0; r < running.length; r += RUN_FIELDS)
      if (running[r] === lane && running[r + 1] - slop <= t)
        return { set: running[r + 2], replicate: running[r + 3], attempt: running[r + 4], state: 3, start: running[r + 1], ms: live() - running[r + 1] };
    var list = byLane[lane] || [];
    for (var j = firstEnding(list, t - slop); j < list.length; j++) {
      var i = list[j] * FIELDS;
      if (tasks[i + 1] > t + slop) break;
      return { set: tasks[i + 4], replicate: tasks[i + 5], attempt: tasks[i + 6], state: tasks[i + 3], start: tasks[i + 1], ms: tasks[i + 2], note: notes[list[j]] };
    }
    return undefined;
  }

  function describe(task) {
    var set = sets[task.set] || { label: '?', param_id: '' };
    var what = task.replicate === -1 ? 'aggregation' : task.replicate === -2 ? 'simulation' : 'replicate ' + task.replicate;
    return what + (task.attempt > 1 ? ' (attempt ' + task.attempt + ')' : '') +
      ' · ' + states[task.state] + '\\n' + set.label + '\\n' + set.param_id.slice(0, 16) +
      '\\n' + task.ms.toFixed(1) + ' ms from ' + seconds(task.start) + (task.note ? '\\n' + task.note : '') +
      (vscode ? '\\nclick: reveal it in the Jobs view' : '');
  }

  canvas.addEventListener('wheel', function (e) {
    e.preventDefault();
    var rect = canvas.getBoundingClientRect(), frac = Math.max(0, Math.min(1, (e.clientX - rect.left - LEFT) / (rect.width - LEFT - 8)));
    var span = view.to - view.from, at = view.from + frac * span;
    var next = Math.min(Math.max(1, live()) * 1.05, Math.max(0.05, span * (e.deltaY > 0 ? 1.25 : 0.8)));
    view.from = Math.max(0, at - frac * next); view.to = view.from + next; follow = false; schedule(true);
  }, { passive: false });
  var dragging = null, moved = false;
  canvas.addEventListener('mousedown', function (e) { dragging = { x: e.clientX, from: view.from, to: view.to }; moved = false; });
  window.addEventListener('mouseup', function () { dragging = null; });
  canvas.addEventListener('mousemove', function (e) {
    if (dragging) {
      var rect = canvas.getBoundingClientRect(), d = ((e.clientX - dragging.x) * (dragging.to - dragging.from)) / (rect.width - LEFT - 8);
      if (Math.abs(e.clientX - dragging.x) > 2) moved = true;
      view.from = Math.max(0, dragging.from - d); view.to = view.from + (dragging.to - dragging.from); follow = false; schedule(true);
      return;
    }
    var task = hit(e);
    if (!task) { tip.style.display = 'none'; return; }
    tip.textContent = describe(task);
    tip.style.display = 'block'; tip.style.left = e.clientX + 12 + 'px'; tip.style.top = e.clientY + 12 + 'px';
  });
  canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  canvas.addEventListener('click', function (e) {
    if (moved || !vscode) return;
    var task = hit(e);
    if (task) vscode.postMessage({ type: 'open', set: task.set, replicate: task.replicate });
  });
  document.getElementById('tl-fit').addEventListener('click', function () {
    follow = true; view.from = 0; view.to = Math.max(1, live()); schedule(true);
  });
  colourBy.addEventListener('change', function () { schedule(true); });
  window.addEventListener('resize', function () { schedule(true); });
  window.addEventListener('message', function (e) { if (e.data && e.data.type === 'timeline') apply(e.data.update); });
  var initial = document.getElementById('timeline-data');
  if (initial && initial.textContent) apply(JSON.parse(initial.textContent));
  if (vscode) vscode.postMessage({ type: 'ready' });
})();
`;

/** The timeline's styles, for the host page (which defines the colour variables). */
export const TIMELINE_STYLE = `
#timeline-root { position: relative; }
.tl-bar { display: flex; gap: 12px; align-items: center; margin: 4px 0; font-size: 12px; color: var(--muted); }
.tl-bar button, .tl-bar select { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 2px; padding: 1px 6px; }
#tl-canvas { display: block; width: 100%; border: 1px solid var(--line); cursor: grab; }
#tl-tip { position: fixed; pointer-events: none; background: var(--bg); color: var(--fg); border: 1px solid var(--line); padding: 3px 6px; font-size: 12px; white-space: pre; display: none; z-index: 10; }
`;
