(() => {
  "use strict";
  performance.mark("cg-start");
  const meta = JSON.parse(document.getElementById("cg-meta").textContent);
  const TYPES = { d4: Int32Array, f4: Float32Array, f8: Float64Array };
  const COLORS = {
    golden: "#4c78a8", actual: "#f58518", failing: "#d62728",
    tolerance: "rgba(84, 162, 75, 0.20)", repeats: "rgba(245, 133, 24, 0.22)",
  };
  const CONFIG = {
    responsive: true, displaylogo: false, scrollZoom: false,
    modeBarButtonsToRemove: ["sendChartToCloud", "select2d", "lasso2d"],
  };
  let resolveReady;
  const api = { ready: new Promise((resolve) => { resolveReady = resolve; }), drawTimes: [], meta };
  window.ciGolden = api;

  async function decodeSeries() {
    const text = document.getElementById("cg-series").textContent.trim();
    if (!text) {
      performance.mark("cg-series");
      return new ArrayBuffer(0);
    }
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const buffer = await new Response(stream).arrayBuffer();
    performance.mark("cg-series");
    return buffer;
  }
  const seriesReady = decodeSeries();

  function series(buffer, id) {
    const [dtype, offset, count] = meta.series[id];
    const T = TYPES[dtype];
    const values = new T(buffer.slice(offset, offset + count * T.BYTES_PER_ELEMENT));
    if (dtype === "d4") for (let i = 1; i < values.length; i++) values[i] += values[i - 1];
    return values;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const fmt = (v) => (v === null || v === undefined ? "—" : Number(Number(v).toPrecision(4)).toString());
  const fmtRel = (v) => (v === null || v === undefined ? "—" : `${Number((v * 100).toPrecision(3))}%`);
  const dash = (v) => (v === null || v === undefined ? "—" : String(v));

  // --- the table: filter, sort, expand --------------------------------------------------------

  const table = document.getElementById("jobs");
  const bodies = Array.from(table.tBodies);
  const filters = {
    verdict: document.getElementById("f-verdict"),
    case: document.getElementById("f-case"),
    environment: document.getElementById("f-environment"),
    platform: document.getElementById("f-platform"),
    metric: document.getElementById("f-metric"),
  };
  const chips = Array.from(document.querySelectorAll("#chips .chip"));

  function applyFilter() {
    const verdict = filters.verdict.value;
    const env = filters.environment.value;
    const platform = filters.platform.value;
    const caseText = filters.case.value.trim().toLowerCase();
    const metricText = filters.metric.value.trim().toLowerCase();
    let shown = 0;
    for (const body of bodies) {
      const d = body.dataset;
      const ok = (!verdict || d.verdict === verdict) && (!env || d.environment === env)
        && (!platform || d.platform === platform) && (!caseText || d.case.toLowerCase().includes(caseText))
        && (!metricText || d.metric.toLowerCase().includes(metricText));
      body.hidden = !ok;
      if (ok) shown++;
      else if (body.classList.contains("open")) collapse(body);
    }
    for (const chip of chips) chip.setAttribute("aria-pressed", String(chip.dataset.verdict === verdict));
    document.getElementById("shown").textContent = `${shown} of ${bodies.length} jobs`;
  }
  for (const input of Object.values(filters)) input.addEventListener("input", applyFilter);
  for (const chip of chips) {
    chip.addEventListener("click", () => {
      filters.verdict.value = filters.verdict.value === chip.dataset.verdict ? "" : chip.dataset.verdict;
      applyFilter();
    });
  }

  const NUMERIC = new Set(["sev", "rel", "step"]);
  function sortBy(th) {
    const key = th.dataset.key;
    const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const value = (body) => body.dataset[key];
    const compare = (a, b) => {
      const va = value(a), vb = value(b);
      if (NUMERIC.has(key)) {
        if (va === "" || vb === "") return va === vb ? 0 : va === "" ? 1 : -1;
        return dir * (Number(va) - Number(vb));
      }
      return dir * va.localeCompare(vb);
    };
    const sorted = bodies.slice().sort((a, b) => compare(a, b) || Number(a.dataset.job) - Number(b.dataset.job));
    for (const body of sorted) table.append(body);
  }
  for (const th of table.tHead.rows[0].cells) th.querySelector("button").addEventListener("click", () => sortBy(th));

  function toggle(body) {
    if (body.classList.contains("open")) collapse(body);
    else expand(body);
  }
  function expand(body) {
    const detail = body.rows[1];
    const cell = detail.cells[0];
    if (!cell.firstChild) cell.append(jobDetail(Number(body.dataset.job)));
    detail.hidden = false;
    body.classList.add("open");
    body.querySelector(".toggle").setAttribute("aria-expanded", "true");
    for (const div of cell.querySelectorAll(".chart")) if (!div.dataset.state) observer.observe(div);
  }
  function collapse(body) {
    const detail = body.rows[1];
    for (const div of detail.querySelectorAll(".chart")) {
      observer.unobserve(div);
      if (div.dataset.state === "drawn") Plotly.purge(div);
      delete div.dataset.state;
    }
    detail.hidden = true;
    body.classList.remove("open");
    body.querySelector(".toggle").setAttribute("aria-expanded", "false");
  }
  for (const body of bodies) {
    body.rows[0].addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      toggle(body);
    });
  }
  document.getElementById("expand-all").addEventListener("click", () => {
    for (const body of bodies) if (!body.hidden && !body.classList.contains("open")) expand(body);
  });
  document.getElementById("collapse-all").addEventListener("click", () => {
    for (const body of bodies) if (body.classList.contains("open")) collapse(body);
  });

  // --- a job's detail ------------------------------------------------------------------------

  function shellQuote(word) {
    const s = String(word);
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\"'\"'")}'`;
  }
  function valueText(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "object") return JSON.stringify(value, null, 1);
    return String(value);
  }
  function kvTable(rows) {
    return el("table", { class: "kv" }, rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v))));
  }

  function settingsTable(job) {
    const rows = [
      ["golden", valueText(job.golden)],
      ["actual values", valueText(job.actual)],
      ["gated metrics", job.gated.length ? job.gated.join(", ") : "—"],
      ["nondeterministic", job.nondeterministic ? "yes: the exact check is skipped" : "no"],
    ];
    if (job.resume_step != null) rows.push(["resume step", String(job.resume_step)]);
    const run = job.run && typeof job.run === "object" ? job.run : {};
    for (const [key, value] of Object.entries(run)) {
      if (key === "commands" && Array.isArray(value)) {
        rows.push([key, value.map((c) => (Array.isArray(c) ? c.map(shellQuote).join(" ") : String(c))).join("\n")]);
      } else {
        rows.push([key, valueText(value)]);
      }
    }
    return kvTable(rows);
  }

  function metricsTable(job) {
    const head = ["Metric", "Verdict", "Policy", "Compared", "Failed", "Missing", "NaN", "First failing step", "Max abs diff", "Max rel diff", "Detail"];
    return el("table", { class: "metrics" },
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, job.metrics.map((m) => el("tr", {},
        el("td", {}, (m.phase ? `${m.phase}: ` : "") + m.name + (m.gated ? "" : " (info)")),
        el("td", { class: `v-${m.verdict}` }, m.verdict),
        el("td", {}, m.policy),
        el("td", {}, dash(m.n_compared)), el("td", {}, dash(m.n_failed)),
        el("td", {}, dash(m.n_missing)), el("td", {}, dash(m.n_nan)),
        el("td", {}, dash(m.first_failing_step)),
        el("td", {}, fmt(m.max_abs_diff)), el("td", {}, fmtRel(m.max_rel_diff)),
        el("td", {}, [m.message || "", ...(m.notes || []).map((n) => `\n${n}`)].join("")),
      ))));
  }

  function jobDetail(index) {
    const job = meta.jobs[index];
    const parts = [];
    if (job.message) parts.push(el("p", { class: "message" }, job.message));
    if (meta.run_url) parts.push(el("p", {}, el("a", { href: meta.run_url, rel: "noopener noreferrer" }, "CI run")));
    if (job.metrics.length) parts.push(el("h3", {}, "Metrics"), metricsTable(job));
    const charts = [];
    job.metrics.forEach((m, mi) => {
      const label = (m.phase ? `${m.phase}: ` : "") + m.name;
      if (m.chart == null) {
        charts.push(el("figure", { class: "metric" }, el("figcaption", {}, label), el("p", { class: "muted" }, "no values to plot")));
        return;
      }
      const first = m.first_failing_step == null ? "" : ` · first failing step ${m.first_failing_step}`;
      const steps = m.chart.full ? ` · all ${m.chart.n_steps} steps` : ` · the ${m.chart.n_steps} points stored in result.json`;
      charts.push(el("figure", { class: "metric", "data-metric": label },
        el("figcaption", {}, el("span", {}, label), " ", el("span", { class: `v-${m.verdict}` }, m.verdict), el("span", { class: "muted" }, steps + first)),
        m.chart.note ? el("p", { class: "chart-note" }, m.chart.note) : null,
        el("div", { class: "chart", "data-job": index, "data-metric-index": mi, role: "img", "aria-label": `${label}: golden and actual per step` })));
    });
    if (charts.length) parts.push(el("h3", {}, "Charts"), el("div", { class: "charts" }, charts));
    parts.push(el("h3", {}, "Settings"), settingsTable(job));
    return el("div", { class: "job-detail" }, parts);
  }

  // --- charts ----------------------------------------------------------------------------------

  function band(x, lo, hi, name, color, hover) {
    const line = { width: 0, color };
    return [
      { x, y: lo, type: "scatter", mode: "lines", line, name, showlegend: false, legendgroup: name, ...(hover ? { hovertemplate: "low %{y:.7g}" } : { hoverinfo: "skip" }) },
      { x, y: hi, type: "scatter", mode: "lines", line, fill: "tonexty", fillcolor: color, name, legendgroup: name, ...(hover ? { hovertemplate: "high %{y:.7g}" } : { hoverinfo: "skip" }) },
    ];
  }

  function figure(buffer, m) {
    const chart = m.chart;
    const x = series(buffer, chart.x);
    const golden = series(buffer, chart.golden);
    const actual = series(buffer, chart.actual);
    const traces = [];
    const shapes = [];
    const annotations = [];
    if (chart.repeats) {
      const r = chart.repeats;
      const rx = series(buffer, r.x), mean = series(buffer, r.mean), std = series(buffer, r.std);
      const lo = mean.map((m, i) => m - std[i]), hi = mean.map((m, i) => m + std[i]);
      traces.push(...band(rx, lo, hi, `repeats: mean ± std (${r.n} runs)`, COLORS.repeats, false));
    }
    const tol = (g) => chart.atol + chart.rtol * Math.abs(g);
    if (chart.kind === "median") {
      if (m.window && m.golden_stat != null) {
        const [w0, w1] = m.window, g = m.golden_stat, t = tol(g);
        traces.push(...band([w0, w1], [g - t, g - t], [g + t, g + t], "tolerance (median)", COLORS.tolerance, true));
        if (m.actual_stat != null) {
          traces.push({ x: [w0, w1], y: [m.actual_stat, m.actual_stat], type: "scatter", mode: "lines", name: "actual median", line: { color: COLORS.actual, dash: "dot", width: 2 }, hovertemplate: "%{y:.7g}" });
        }
      }
    } else if (chart.kind !== "info") {
      const lo = golden.map((g) => (chart.kind === "lower" || chart.kind === "approx" ? g - tol(g) : g));
      const hi = golden.map((g) => (chart.kind === "upper" || chart.kind === "approx" ? g + tol(g) : g));
      traces.push(...band(x, lo, hi, `tolerance (${chart.kind})`, COLORS.tolerance, true));
    }
    traces.push({ x, y: golden, type: "scatter", mode: "lines", name: "golden", line: { color: COLORS.golden, width: 3 }, hovertemplate: "%{y:.7g}" });
    traces.push({ x, y: actual, type: "scatter", mode: "lines", name: "actual", line: { color: COLORS.actual, width: 1.5 }, hovertemplate: "%{y:.7g}" });
    if (chart.failing != null) {
      const idx = series(buffer, chart.failing);
      traces.push({
        x: Array.from(idx, (i) => x[i]), y: Array.from(idx, (i) => (Number.isFinite(actual[i]) ? actual[i] : golden[i])),
        type: "scatter", mode: "markers", name: `failing steps (${chart.n_failing})`,
        marker: { color: COLORS.failing, symbol: "x", size: 6 }, hovertemplate: "%{y:.7g}",
      });
    }
    if (m.first_failing_step != null) {
      const s = m.first_failing_step;
      shapes.push({ type: "line", name: "first-failing-step", xref: "x", yref: "paper", x0: s, x1: s, y0: 0, y1: 1, line: { color: COLORS.failing, width: 1.5, dash: "dash" } });
      annotations.push({ name: "first-failing-step", xref: "x", yref: "paper", x: s, y: 1, yanchor: "bottom", showarrow: false, text: `first failing step ${s}`, font: { color: COLORS.failing, size: 11 } });
    }
    const layout = {
      margin: { l: 64, r: 12, t: 28, b: 30 },
      hovermode: "x unified",
      showlegend: true,
      legend: { orientation: "h", x: 0, y: -0.1, yanchor: "top", font: { size: 11 } },
      xaxis: { zeroline: false, hoverformat: "d" },
      yaxis: { zeroline: false, exponentformat: "SI" },
      shapes, annotations,
    };
    return { traces, layout };
  }

  async function draw(div) {
    if (div.dataset.state) return;
    div.dataset.state = "drawing";
    observer.unobserve(div);
    try {
      const buffer = await seriesReady;
      if (div.dataset.state !== "drawing") return;
      const metric = meta.jobs[Number(div.dataset.job)].metrics[Number(div.dataset.metricIndex)];
      const started = performance.now();
      const { traces, layout } = figure(buffer, metric);
      await Plotly.newPlot(div, traces, layout, CONFIG);
      div.dataset.state = "drawn";
      api.drawTimes.push(performance.now() - started);
    } catch (err) {
      div.dataset.state = "error";
      div.replaceChildren(el("p", { class: "chart-error" }, `chart failed: ${err}`));
      console.error(err);
    }
  }

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) if (entry.isIntersecting) draw(entry.target);
  }, { rootMargin: "200px 0px" });

  function inView(node) {
    const r = node.getBoundingClientRect();
    return r.bottom >= 0 && r.top <= window.innerHeight && r.width > 0;
  }

  async function start() {
    const status = document.getElementById("status");
    for (const body of bodies) if (body.dataset.open === "1") expand(body);
    try {
      await seriesReady;
      await Promise.all(Array.from(document.querySelectorAll(".chart")).filter(inView).map(draw));
    } catch (err) {
      status.textContent = `could not read the chart data: ${err}`;
      console.error(err);
    }
    performance.mark("cg-ready");
    document.documentElement.dataset.ready = "true";
    resolveReady();
  }
  start();
})();
