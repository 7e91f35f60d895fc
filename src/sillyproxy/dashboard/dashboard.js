// sillyproxy's dashboard: reads "history" once, then polls "status" every
// second and draws each colour's share, ramp, rollback, latency and traffic.
//
// Relative URLs throughout, so the page works at any host, port or path
// prefix the admin listener is reached by. No libraries and no inline code:
// the page's Content-Security-Policy is default-src 'self'. Text from the
// proxy goes into the page with textContent only, never as markup.
"use strict";

(() => {
  const POLL_MS = 1000;
  const WINDOW_MS = 300 * 1000;     // the charts show the last 5 minutes
  const FETCH_TIMEOUT_MS = 5000;
  const GAP_MS = 2500;              // a longer gap between points breaks the line
  // Colours without a rule in dashboard.css get one of these, by name.
  const STYLED = new Set(["blue", "green", "canary", "red"]);
  const PALETTE = ["#8250df", "#bf3989", "#0a7a8a", "#953800", "#6e7781"];

  const series = new Map();  // colour -> {rps: [[t, v]], errors: [[t, v]]}
  const cards = new Map();   // colour -> its <section>
  let offsetMs = 0;          // the proxy's clock minus the browser's

  const $ = (selector, root = document) => root.querySelector(selector);
  const serverNow = () => Date.now() + offsetMs;

  function parseTime(text) {
    const t = Date.parse(text || "");
    return Number.isNaN(t) ? null : t;
  }

  const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
  const round1 = (v) => String(Math.round(v * 10) / 10);
  const fraction = (v) => (isNumber(v) ? `${round1(v * 100)} %` : "—");
  const rate = (v) => (isNumber(v) ? (v < 10 ? v.toFixed(1) : String(Math.round(v))) : "—");
  const millis = (v) => (isNumber(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} ms` : "—");
  const count = (v) => (isNumber(v) ? v.toLocaleString("en") : "—");

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const [d, h, m] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60];
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  function countdown(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function setText(root, selector, text) {
    const element = $(selector, root);
    if (element.textContent !== text) element.textContent = text;
  }

  // Known colours are styled by [data-color] in the CSS; others get a
  // palette colour through a custom property (CSSOM, which the CSP allows).
  function paint(element, name) {
    element.dataset.color = name;
    if (!STYLED.has(name)) {
      let hash = 0;
      for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
      element.style.setProperty("--accent", PALETTE[hash % PALETTE.length]);
    }
  }

  async function getJSON(path) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(path, { cache: "no-store", signal: abort.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  function seriesOf(name) {
    if (!series.has(name)) series.set(name, { rps: [], errors: [] });
    return series.get(name);
  }

  function append(points, t, value) {
    // History's points are a second apart; a poll that lands within half a
    // second of the last point adds nothing new.
    if (points.length && t - points[points.length - 1][0] < 500) return;
    points.push([t, isNumber(value) ? value : null]);
    while (points.length && points[0][0] < t - WINDOW_MS) points.shift();
  }

  async function seed() {
    let history;
    try {
      history = await getJSON("history");
    } catch (error) {
      return;  // a proxy without /history: the charts start empty
    }
    const end = parseTime(history.end);
    const step = (history.interval_seconds || 1) * 1000;
    if (end === null) return;
    for (const [name, data] of Object.entries(history.colors || {})) {
      const rps = data.requests_per_second || [];
      const errors = data.error_rate || [];
      const s = seriesOf(name);
      rps.forEach((value, i) => {
        const t = end - (rps.length - 1 - i) * step;
        append(s.rps, t, value);
        append(s.errors, t, errors[i]);
      });
    }
  }

  function card(name) {
    if (cards.has(name)) return cards.get(name);
    const section = $("#color-template").content.firstElementChild.cloneNode(true);
    paint(section, name);
    section.setAttribute("aria-label", `colour ${name}`);
    $(".color-name", section).textContent = name;
    $("#colors").append(section);
    cards.set(name, section);
    return section;
  }

  function updateSplit(bar, colors, key) {
    const parts = [];
    for (const [name, c] of colors) {
      let segment = bar.querySelector(`span[data-color="${CSS.escape(name)}"]`);
      if (!segment) {
        segment = document.createElement("span");
        paint(segment, name);
        bar.append(segment);
      }
      const share = isNumber(c[key]) ? c[key] : 0;
      segment.style.width = `${share * 100}%`;
      // A label only where it fits; the bar's aria-label and the cards
      // carry every number.
      segment.textContent = share >= 0.12 ? `${name} ${fraction(share)}` : "";
      segment.title = `${name} ${fraction(share)}`;
      parts.push(`${name} ${fraction(c[key])}`);
    }
    for (const segment of bar.querySelectorAll("span")) {
      if (!colors.some(([name]) => name === segment.dataset.color)) segment.remove();
    }
    bar.setAttribute("aria-label", parts.join(", ") || "no colours");
  }

  function updateAddresses(list, addresses) {
    list.replaceChildren(...(addresses || []).map((a) => {
      const item = document.createElement("li");
      item.className = a.in_rotation ? "up" : "down";
      item.dataset.address = a.address;
      const details = [];
      if (a.passing_health_checks === false) details.push("failing health checks");
      if (a.ejected_for_seconds > 0) details.push(`ejected for ${Math.ceil(a.ejected_for_seconds)} s`);
      for (const [cls, text] of [["address", a.address], ["state", a.in_rotation ? "up" : "down"],
                                 ["detail", details.join(", ")]]) {
        const span = document.createElement("span");
        span.className = cls;
        span.textContent = text;
        item.append(span);
      }
      return item;
    }));
  }

  function updateCard(section, c) {
    section.classList.toggle("rolled-back", Boolean(c.rolled_back));
    $(".rolled-back-badge", section).hidden = !c.rolled_back;
    setText(section, ".color-url", c.url || "");
    const mirror = $(".mirror", section);
    mirror.hidden = !c.mirror;
    if (c.mirror) mirror.textContent = `mirror of ${round1(c.mirror.percent)} % of traffic`;

    const ramp = c.ramp;
    $(".ramp", section).hidden = !ramp;
    section.dataset.nextStepAt = (ramp && ramp.next_step_at) || "";
    if (ramp) {
      setText(section, ".ramp-step", ramp.step > 0
        ? `step ${ramp.step} of ${ramp.steps}, ${round1(ramp.percent)} %`
        : `ramp of ${ramp.steps} steps not started`);
      // Before the start, the countdown is to the first step; on the last
      // step, to the ramp's end; after that there is none.
      section.dataset.rampPhase = ramp.step === 0 ? "before" : ramp.step < ramp.steps ? "on"
        : ramp.next_step_at ? "last" : "done";
    }

    setText(section, ".share", fraction(c.share));
    setText(section, ".configured-share", fraction(c.configured_share));
    setText(section, ".observed-share", fraction(c.observed_share));
    setText(section, ".rps", rate(c.requests_per_second));
    setText(section, ".error-rate", fraction(c.error_rate));
    $(".error-rate", section).classList.toggle("bad", isNumber(c.error_rate) && c.error_rate >= 0.01);
    setText(section, ".p50", millis(c.p50_ms));
    setText(section, ".p99", millis(c.p99_ms));
    // A ramping colour's configured weight is 0 (the ramp sets its share);
    // the effective weights are internal scaled integers: the shares above
    // say the same thing readably.
    setText(section, ".weight", ramp ? "ramp" : count(c.weight));
    setText(section, ".requests", count(c.requests));
    setText(section, ".upstream-errors", count(c.upstream_errors));
    setText(section, ".open-tunnels", count(c.open_tunnels));
    updateAddresses($(".addresses", section), c.addresses);
  }

  // The countdown runs between polls too, from the proxy's clock.
  function tick() {
    for (const section of cards.values()) {
      const next = parseTime(section.dataset.nextStepAt);
      const phase = section.dataset.rampPhase;
      const left = next === null ? "" : countdown(next - serverNow());
      let text = "";
      if (section.classList.contains("rolled-back")) text = "· stopped by the rollback";
      else if (phase === "done") text = "· complete";
      else if (left && phase === "before") text = `· starts in ${left}`;
      else if (left && phase === "last") text = `· completes in ${left}`;
      else if (left) text = `· next step in ${left}`;
      setText(section, ".ramp-next", text);
    }
  }

  function niceCeiling(v) {
    const magnitude = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * magnitude).find((n) => n >= v);
  }

  function draw(canvas, points, { floor, cap, format, label }) {
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = canvas.getBoundingClientRect();
    if (!width || !height) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const style = getComputedStyle(canvas);
    const accent = style.getPropertyValue("--accent").trim();
    const values = points.map((p) => p[1]).filter(isNumber);
    const top = Math.min(cap, niceCeiling(Math.max(floor, ...values)));
    const end = serverNow();
    const pad = { left: 2, right: 2, top: 16, bottom: 14 };
    const x = (t) => pad.left + (1 - (end - t) / WINDOW_MS) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (Math.min(v, top) / top) * (height - pad.top - pad.bottom);

    g.font = "11px system-ui, sans-serif";
    g.fillStyle = style.getPropertyValue("--muted").trim();
    g.fillText(format(top), pad.left, 11);
    g.fillText("5 min ago", pad.left, height - 2);
    g.textAlign = "right";
    g.fillText("now", width - pad.right, height - 2);
    g.strokeStyle = style.getPropertyValue("--grid").trim();
    g.lineWidth = 1;
    g.beginPath();
    for (const v of [0, top / 2, top]) {
      g.moveTo(pad.left, Math.round(y(v)) + 0.5);
      g.lineTo(width - pad.right, Math.round(y(v)) + 0.5);
    }
    g.stroke();

    // Runs of points without a null or a long gap, each drawn as a line
    // over a faint area.
    const runs = [];
    let run = [];
    for (const [t, v] of points) {
      if (t < end - WINDOW_MS) continue;
      if (v === null || (run.length && t - run[run.length - 1][0] > GAP_MS)) {
        if (run.length) runs.push(run);
        run = [];
      }
      if (v !== null) run.push([t, v]);
    }
    if (run.length) runs.push(run);
    g.strokeStyle = accent;
    g.fillStyle = accent;
    g.lineWidth = 1.5;
    for (const r of runs) {
      g.beginPath();
      r.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
      g.stroke();
      g.lineTo(x(r[r.length - 1][0]), y(0));
      g.lineTo(x(r[0][0]), y(0));
      g.globalAlpha = 0.15;
      g.fill();
      g.globalAlpha = 1;
    }
    const last = values.length ? values[values.length - 1] : null;
    canvas.setAttribute("aria-label", values.length
      ? `${label}, last 5 minutes: now ${format(last)}, highest ${format(Math.max(...values))}`
      : `${label}: no data yet`);
  }

  function drawCharts() {
    for (const [name, section] of cards) {
      const s = seriesOf(name);
      draw($(".chart-rps", section), s.rps, { floor: 1, cap: Infinity, format: rate, label: "requests per second" });
      draw($(".chart-errors", section), s.errors, { floor: 0.05, cap: 1, format: fraction, label: "error rate" });
    }
  }

  function render(status, t) {
    setText(document, "#version", status.version || "—");
    setText(document, "#uptime", isNumber(status.uptime_seconds) ? duration(status.uptime_seconds) : "—");
    setText(document, "#listen", status.listen || "—");
    setText(document, "#open-connections", count(status.open_connections));
    $("#draining-banner").hidden = !status.draining;

    const colors = Object.entries(status.colors || {});
    for (const [name, section] of cards) {
      if (!(name in (status.colors || {}))) {
        section.remove();
        cards.delete(name);
      }
    }
    for (const [name, c] of colors) {
      updateCard(card(name), c);
      const s = seriesOf(name);
      append(s.rps, t, c.requests_per_second);
      append(s.errors, t, c.error_rate);
    }
    updateSplit($("#split-now"), colors, "share");
    updateSplit($("#split-configured"), colors, "configured_share");

    const banner = $("#rollback-banner");
    const rolledBack = colors.filter(([, c]) => c.rolled_back);
    banner.replaceChildren(...rolledBack.map(([name, c]) => {
      const line = document.createElement("p");
      line.textContent = `${name} rolled back: ${c.rollback_reason || "no reason given"}`;
      return line;
    }));
    banner.hidden = rolledBack.length === 0;

    tick();
    drawCharts();
  }

  function connection(ok, detail) {
    const element = $("#connection");
    element.classList.toggle("stale", !ok);
    element.textContent = ok ? `live · updated ${detail}` : `cannot reach status (${detail}); retrying`;
  }

  async function poll() {
    const started = Date.now();
    try {
      const status = await getJSON("status");
      const t = parseTime(status.time);
      if (t !== null) offsetMs = t - Date.now();
      render(status, t === null ? serverNow() : t);
      connection(true, new Date(serverNow()).toLocaleTimeString());
      document.documentElement.dataset.updated = status.time || String(started);
    } catch (error) {
      connection(false, error.name === "AbortError" ? "timed out" : error.message);
    }
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  async function start() {
    await seed();
    setInterval(tick, 250);
    window.addEventListener("resize", drawCharts);
    poll();
  }

  start();
})();
