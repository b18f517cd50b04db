// espfleet bench page: renders what /api/events streams. Read-only; every value from the
// daemon goes into the page as text (textContent), never as markup.
'use strict';
(function () {
  // The daemon's port states (PortStatus.state) as the phases an operator reads. A state
  // this table does not know is shown as it is.
  const PHASE = {
    present: 'waiting',
    idle: 'waiting',
    connecting: 'identifying',
    identifying: 'identifying',
    flashing: 'flashing',
    // An attempt failed; after the backoff the worker connects again: identifying.
    retrying: 'identifying',
    verifying: 'verifying',
    flashed: 'done',
    verified: 'done',
    failed: 'failed',
    'left-alone': 'left alone',
  };
  const FINAL = new Set(['done', 'failed', 'left alone']);
  const HISTORY_MAX = 500;

  const state = {
    status: null,
    counters: null,
    history: [],
    maps: [],
    clockOffset: 0,
    mapsDirty: true,
    historyDirty: true,
  };
  // Measurements for tests and the benchmark (tests/bench/page.sh): when the first frame
  // with the bench was presented, and when each slot's progress last changed on screen.
  const perf = { firstFrame: null, firstSlotPaint: null, statusEvents: 0, updates: {}, latency: [] };
  if (window.PerformanceObserver && PerformanceObserver.supportedEntryTypes &&
      PerformanceObserver.supportedEntryTypes.includes('element')) {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const t = e.renderTime || e.loadTime;
        if (e.identifier === 'slot' && t && (perf.firstSlotPaint === null || t < perf.firstSlotPaint)) {
          perf.firstSlotPaint = t;
        }
      }
    }).observe({ type: 'element', buffered: true });
  }
  let pendingClock = null; // server time of the batch whose status awaits its frame
  window.espfleetPerf = perf;

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }

  // Decimal units, as the daemon's log lines write them.
  function bytes(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + ' MB';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + ' kB';
    return n + ' B';
  }
  function duration(ms) {
    if (ms < 0) ms = 0;
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    const s = Math.floor(ms / 1000);
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }
  // "… [espfleet::flash::no_response]" → the words, and the code apart.
  function splitError(s) {
    const m = /^(.*?)\s*\[(espfleet::[a-z0-9_:]+)\]\s*$/s.exec(s || '');
    return m ? { text: m[1], code: m[2] } : { text: s || '', code: '' };
  }
  const phaseOf = (p) => PHASE[p.state] || p.state;
  const serverNow = () => Date.now() + state.clockOffset;
  const bySlot = (a, b) => a.localeCompare(b, 'en', { numeric: true });

  // --- Slot tiles -------------------------------------------------------------------------
  const tiles = new Map();

  function makeTile(slot) {
    const t = el('article', 'tile');
    t.dataset.slot = slot;
    const head = el('div', 'head');
    const name = el('h3', 'slot', slot);
    // Element Timing: the browser reports when this text was first painted (the benchmark's
    // "first frame showing the bench").
    name.setAttribute('elementtiming', 'slot');
    head.append(name);
    const badge = el('span', 'badge');
    head.append(badge);
    t.append(head);
    const board = el('div', 'facts board');
    const manifest = el('div', 'facts manifest');
    const serial = el('div', 'facts serial');
    const bar = el('div', 'bar');
    const fill = el('div', 'fill');
    bar.append(fill);
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    const numbers = el('div', 'numbers');
    const amount = el('span', 'amount');
    const elapsed = el('span', 'elapsed');
    numbers.append(amount, elapsed);
    const detail = el('div', 'detail');
    t.append(board, manifest, serial, bar, numbers, detail);
    const parts = { t, badge, board, manifest, serial, bar, fill, amount, elapsed, detail };
    tiles.set(slot, parts);
    return parts;
  }

  function kv(node, pairs) {
    node.textContent = '';
    pairs.forEach(([k, v], i) => {
      if (i) node.append(' · ');
      node.append(el('span', 'k', k + ' '), v === null || v === undefined ? '—' : String(v));
    });
  }

  function updateElapsed(parts, p) {
    if (!p.since_ms) {
      parts.elapsed.textContent = '';
      return;
    }
    const end = p.until_ms || serverNow();
    parts.elapsed.textContent = duration(end - p.since_ms);
  }

  let freshStatus = false; // a status arrived since the last frame
  function renderSlots() {
    const ports = (state.status && state.status.ports) || [];
    const box = $('slots');
    const seen = new Set();
    const sorted = ports.slice().sort((a, b) => bySlot(a.slot, b.slot));
    for (const p of sorted) {
      seen.add(p.slot);
      const parts = tiles.get(p.slot) || makeTile(p.slot);
      parts.port = p;
      const phase = phaseOf(p);
      const t = parts.t;
      t.dataset.phase = phase;
      t.dataset.state = p.state;
      t.dataset.done = String(p.done);
      t.dataset.total = String(p.total);
      let label = phase;
      if (p.state === 'retrying') label = 'retrying · attempt ' + p.attempt;
      else if (p.state === 'verified') label = 'done · up to date';
      else if (phase === 'flashing' && p.attempt > 1) label = 'flashing · attempt ' + p.attempt;
      parts.badge.textContent = label;
      parts.badge.dataset.phase = phase;
      kv(parts.board, [['chip', p.chip], ['MAC', p.mac]]);
      kv(parts.manifest, [['manifest', p.manifest], ['port', p.port]]);
      kv(parts.serial, [['serial', p.serial]]);
      const pct = p.total > 0 ? Math.min(100, (100 * p.done) / p.total) : 0;
      parts.fill.style.width = pct.toFixed(1) + '%';
      parts.bar.setAttribute('aria-valuenow', pct.toFixed(0));
      let amount = p.total > 0 ? bytes(p.done) + ' / ' + bytes(p.total) : '';
      if (p.rate && p.total > 0) amount += ' · ' + bytes(p.rate) + '/s';
      parts.amount.textContent = amount;
      updateElapsed(parts, p);
      parts.detail.textContent = '';
      if (p.detail) {
        const e = splitError(p.detail);
        parts.detail.append(e.text);
        if (e.code) parts.detail.append(el('span', 'code', e.code));
      }
      // For the benchmark, per busy slot: when its tile was drawn from a new status
      // (`fresh`), and when its progress changed on screen (`times`).
      if (phase === 'flashing' || phase === 'verifying') {
        const u = perf.updates[p.slot] || (perf.updates[p.slot] = { last: -1, times: [], fresh: [] });
        const now = performance.now();
        if (freshStatus && u.fresh.length < 4000) u.fresh.push(now);
        if (u.last !== p.done) {
          u.last = p.done;
          if (u.times.length < 4000) u.times.push(now);
        }
      }
      box.append(t); // keeps tiles in slot order (moves an existing node)
    }
    for (const [slot, parts] of tiles) {
      if (!seen.has(slot)) {
        parts.t.remove();
        tiles.delete(slot);
      }
    }
    const empty = box.querySelector('.empty');
    if (empty) empty.hidden = ports.length > 0;
  }

  function tickElapsed() {
    for (const parts of tiles.values()) {
      const p = parts.port;
      if (p && !FINAL.has(phaseOf(p))) updateElapsed(parts, p);
    }
  }

  // --- Counters and the boards-per-hour plot ------------------------------------------------
  function localMidnight() {
    const d = new Date(serverNow());
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  }

  function renderCounters() {
    const c = state.counters;
    if (c) {
      const from = localMidnight();
      const today = { flashed: 0, verified: 0, failed: 0, left_alone: 0 };
      for (const h of c.hours) {
        if (h.start >= from) for (const k in today) today[k] += h[k];
      }
      $('c-flashed').textContent = today.flashed;
      $('c-verified').textContent = today.verified;
      $('c-failed').textContent = today.failed;
      $('c-left').textContent = today.left_alone;
      $('c-rate').textContent = c.last_hour.flashed + c.last_hour.verified;
      renderPlot(c.hours.slice(-24));
    }
    // Certificate pools (per-device identity): the tightest pool of the manifests in force.
    const pools = ((state.status && state.status.manifests) || []).filter((m) => m.pool);
    const box = $('pool');
    if (pools.length === 0) {
      $('c-pool').textContent = '—';
      $('c-pool-lbl').textContent = 'certificate pool';
      box.classList.remove('warn');
    } else {
      const tight = pools.reduce((a, b) => (b.pool.remaining < a.pool.remaining ? b : a));
      $('c-pool').textContent = tight.pool.remaining;
      $('c-pool-lbl').textContent =
        'certificates left (' + tight.file + ', warn below ' + tight.pool.warn_below + ')';
      box.classList.toggle('warn', tight.pool.remaining < tight.pool.warn_below);
    }
  }

  function renderPlot(hours) {
    const plot = $('plot');
    plot.textContent = '';
    const W = 300, H = 64, base = 52, n = hours.length || 1, bw = W / n;
    const max = Math.max(1, ...hours.map((h) => h.flashed + h.verified + h.failed));
    plot.append(svg('line', { class: 'axis', x1: 0, y1: base + 0.5, x2: W, y2: base + 0.5 }));
    hours.forEach((h, i) => {
      const done = h.flashed + h.verified;
      const hd = (done / max) * (base - 4);
      const hf = (h.failed / max) * (base - 4);
      const x = i * bw + 1;
      const tip = new Date(h.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) +
        ': ' + done + ' done, ' + h.failed + ' failed';
      const r = svg('rect', { class: 'done', x: x.toFixed(1), y: (base - hd).toFixed(1), width: (bw - 2).toFixed(1), height: hd.toFixed(1) });
      const t = svg('title', {});
      t.textContent = tip;
      r.append(t);
      plot.append(r);
      if (hf > 0) {
        plot.append(svg('rect', { class: 'failed', x: x.toFixed(1), y: (base - hd - hf).toFixed(1), width: (bw - 2).toFixed(1), height: hf.toFixed(1) }));
      }
      if (i % 6 === 0) {
        const label = svg('text', { x: x.toFixed(1), y: H - 2 });
        label.textContent = new Date(h.start).toLocaleTimeString([], { hour: '2-digit' });
        plot.append(label);
      }
    });
  }

  // --- Manifests and their flash maps -----------------------------------------------------
  function renderMaps() {
    const box = $('maps');
    box.textContent = '';
    const manifests = (state.status && state.status.manifests) || [];
    const byFile = new Map(manifests.map((m) => [m.file, m]));
    if (state.maps.length === 0) {
      box.append(el('p', 'empty', 'No manifest in force.'));
    }
    for (const m of state.maps) {
      const card = el('article', 'map');
      card.dataset.file = m.file;
      card.append(el('h3', '', m.name + ' — ' + m.file));
      const meta = el('div', 'meta');
      const st = byFile.get(m.file);
      const map = m.map;
      // Flash chips are sold in binary megabytes.
      const flash = map.flash_size % 1048576 === 0 ? map.flash_size / 1048576 + ' MB' : bytes(map.flash_size);
      meta.append((map.chip || 'unknown chip') + ', ' + flash + ' flash, ' +
        map.regions.length + ' regions, ' + map.parts.length + ' parts written');
      if (st && st.error) {
        meta.append(' · ', el('span', 'broken', 'the file no longer builds; this version stays in force'));
      }
      meta.append(' · certificate pool: ' + (st && st.pool ? st.pool.remaining + ' left (warn below ' + st.pool.warn_below + ')' : '—'));
      card.append(meta);
      const img = el('img');
      img.decoding = 'async';
      img.src = m.svg_url;
      img.alt = 'Flash map of ' + m.file + ': partitions and parts written, to scale';
      img.width = 960;
      card.append(img);
      box.append(card);
    }
  }

  // --- History --------------------------------------------------------------------------
  function renderHistory() {
    const slotSel = $('f-slot');
    const want = { slot: slotSel.value, outcome: $('f-outcome').value };
    const slots = new Set(state.history.map((r) => r.slot).filter(Boolean));
    for (const p of (state.status && state.status.ports) || []) slots.add(p.slot);
    const have = new Set(Array.from(slotSel.options).map((o) => o.value));
    for (const s of Array.from(slots).sort(bySlot)) {
      if (!have.has(s)) slotSel.append(new Option(s, s));
    }
    const body = $('history');
    body.textContent = '';
    for (const r of state.history) {
      if (want.slot && r.slot !== want.slot) continue;
      if (want.outcome && r.outcome !== want.outcome) continue;
      const tr = el('tr');
      tr.dataset.outcome = r.outcome;
      const when = new Date(r.time);
      tr.append(
        el('td', '', isNaN(when) ? r.time : when.toLocaleString()),
        el('td', '', r.slot || '—'),
        el('td', '', r.chip || '—'),
        el('td', '', r.mac || '—'),
        el('td', '', r.manifest || '—'),
      );
      const oc = el('td', 'outcome', r.outcome.replace('-', ' '));
      oc.dataset.outcome = r.outcome;
      tr.append(oc, el('td', '', r.bytes ? bytes(r.bytes) : '—'),
        el('td', '', r.duration_ms ? duration(r.duration_ms) : '—'),
        el('td', 'err', splitError(r.error).text || ''));
      body.append(tr);
    }
  }

  // --- Rendering and the event stream -------------------------------------------------------
  let scheduled = false;
  // Maps and history wait until the first frame with the slots is on screen: what an operator
  // looks at first is drawn first, and that frame stays light.
  let slotsShown = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      renderSlots();
      freshStatus = false;
      renderCounters();
      if (state.mapsDirty && slotsShown) {
        state.mapsDirty = false;
        renderMaps();
      }
      if (state.historyDirty && slotsShown) {
        state.historyDirty = false;
        renderHistory();
      }
      if (pendingClock !== null) {
        // Server and page share a clock on one machine: the delay from the server's tick
        // that sent this status to the frame that shows it.
        if (perf.latency.length < 20000) perf.latency.push(Date.now() - pendingClock);
        pendingClock = null;
      }
      if (perf.firstFrame === null && state.status) afterFirstFrame();
    });
  }

  // The frame after next starts once the first frame with the bench was presented.
  function afterFirstFrame() {
    perf.firstFrame = -1;
    requestAnimationFrame(() => {
      requestAnimationFrame(() => {
        performance.mark('espfleet-first-frame');
        perf.firstFrame = performance.now();
        slotsShown = true;
        schedule();
      });
    });
  }

  function connect() {
    const es = new EventSource('/api/events');
    const conn = $('conn');
    es.onopen = () => {
      conn.textContent = 'live';
      conn.dataset.live = 'true';
    };
    es.onerror = () => {
      conn.textContent = 'reconnecting…';
      conn.dataset.live = 'false';
    };
    const on = (name, f) => es.addEventListener(name, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch (_) { return; }
      f(data);
      schedule();
    });
    let lastClock = null;
    on('clock', (d) => { state.clockOffset = d.now - Date.now(); lastClock = d.now; });
    on('status', (d) => {
      perf.statusEvents++;
      freshStatus = true;
      if (lastClock !== null && pendingClock === null) pendingClock = lastClock;
      const before = JSON.stringify(((state.status && state.status.manifests) || []));
      state.status = d;
      if (JSON.stringify(d.manifests || []) !== before) state.mapsDirty = true;
    });
    on('counters', (d) => { state.counters = d; });
    on('history', (d) => { state.history = d; state.historyDirty = true; });
    on('records', (d) => {
      state.history = d.slice().reverse().concat(state.history).slice(0, HISTORY_MAX);
      state.historyDirty = true;
    });
    on('maps', (d) => { state.maps = d; state.mapsDirty = true; });
  }

  // This script is the last thing in the page: everything it needs is parsed already.
  function start() {
    $('f-slot').addEventListener('change', () => { state.historyDirty = true; schedule(); });
    $('f-outcome').addEventListener('change', () => { state.historyDirty = true; schedule(); });
    setInterval(tickElapsed, 250);
    // The state the server put into the page: the first frame needs no second request.
    const initial = $('initial');
    if (initial) {
      try {
        const d = JSON.parse(initial.textContent);
        state.clockOffset = d.now - Date.now();
        state.status = d.status;
        state.counters = d.counters;
        state.maps = d.maps;
        // Draw the slots now, before the browser's first paint; the rest in the next frame.
        renderSlots();
        renderCounters();
        if (state.status) afterFirstFrame();
      } catch (_) { /* the event stream brings it all anyway */ }
    }
    connect();
  }
  start();
})();
