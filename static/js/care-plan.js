// A care plan's page: each goal's chart draws the last 30 days of readings against the goal's
// target band (Chart.js, loaded before this module, as on the results page). The page is made
// live by live-sections.js (`care.plan` events of this plan, `care.task` events of this
// patient: it fetches the plan's sections rendered by the server); the charts are drawn again
// after each refresh. Everything works without scripts (plain forms, reload).

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

function start() {
  if (root) {
    drawCharts(root);
    root.addEventListener("vh:live-refreshed", () => drawCharts(root));
  }
}

if (document.readyState === "complete") start();
else window.addEventListener("load", start);
