// A care plan's page, made live. Everything works without this script (plain forms, reload);
// with it:
// - each goal's chart draws the last 30 days of readings against the goal's target band
//   (Chart.js, loaded before this module, as on the results page);
// - the page listens to `care.plan` events of this plan and `care.task` events of this patient
//   (re-dispatched by realtime.js as the `vh:realtime` DOM event) and fetches the plan's
//   sections rendered by the server (access checked there again), so a change made by another
//   member of the team shows without a reload.
// Event shapes are declared in apps/core/realtime.py (EVENT_TYPES).

const root = document.querySelector("[data-care-plan]");
const charts = new Map();

function drawCharts(container) {
  if (!window.Chart) return;
  const lang = document.documentElement.lang || "fr";
  const dateFormat = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short" });
  for (const canvas of container.querySelectorAll("canvas[data-goal-chart]")) {
    const source = document.getElementById(canvas.dataset.goalChart);
    if (!source) continue;
    const series = JSON.parse(source.textContent);
    const points = series.points.map((p) => ({ x: Date.parse(p.t), y: p.v }));
    if (points.length === 0) continue;
    const first = points[0].x;
    const last = points[points.length - 1].x;
    const line = (value, label) => ({
      label,
      data: [{ x: first, y: value }, { x: last, y: value }],
      borderColor: "#8a4b00",
      borderDash: [6, 4],
      pointRadius: 0,
      borderWidth: 1,
    });
    const datasets = [
      {
        label: `${series.label} (${series.unit})`,
        data: points,
        borderColor: "#0b5d7a",
        backgroundColor: "#0b5d7a",
        pointRadius: points.length > 40 ? 0 : 3,
        borderWidth: 2,
      },
    ];
    if (series.low !== null) datasets.push(line(series.low, `min ${series.low}`));
    if (series.high !== null) datasets.push(line(series.high, `max ${series.high}`));
    charts.get(canvas.dataset.goalChart)?.destroy();
    const chart = new window.Chart(canvas, {
      type: "line",
      data: { datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        parsing: false,
        scales: {
          x: { type: "linear", ticks: { maxTicksLimit: 5, callback: (v) => dateFormat.format(new Date(v)) } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: (items) => new Date(items[0].parsed.x).toLocaleString(lang) } },
        },
      },
    });
    charts.set(canvas.dataset.goalChart, chart);
  }
}

function setUpLive(container) {
  const planId = String(container.dataset.plan);
  const patientId = String(container.dataset.patient);
  const sections = container.querySelector("[data-plan-sections]");
  const announce = container.querySelector("[data-live-announce]");
  let running = false;
  let again = false;

  async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const response = await fetch(container.dataset.sectionsUrl, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      if (response.ok) {
        const html = await response.text();
        // Keep the reader where they were: the sections change, the page does not jump.
        const focusedId = document.activeElement?.closest("[id]")?.id;
        sections.innerHTML = html;
        drawCharts(sections);
        if (focusedId) document.getElementById(focusedId)?.querySelector("button, a")?.focus({ preventScroll: true });
        if (announce) announce.textContent = container.dataset.updatedText || "";
        container.dataset.refreshed = String(Number(container.dataset.refreshed || "0") + 1);
      }
    } catch {
      // Offline for a moment: the next event or a reload shows the change.
    } finally {
      running = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  document.addEventListener("vh:realtime", (dom) => {
    const event = dom.detail;
    if (!event) return;
    if (event.type === "care.plan" && String(event.plan) === planId) refresh();
    else if (event.type === "care.task" && String(event.patient) === patientId) refresh();
  });
  container.dataset.live = "ready";
}

function start() {
  if (root) {
    drawCharts(root);
    setUpLive(root);
  }
}

if (document.readyState === "complete") start();
else window.addEventListener("load", start);
