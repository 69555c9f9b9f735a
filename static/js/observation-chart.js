// Draws the series of one measurement with its usual range (Chart.js, loaded before this module).
const canvas = document.querySelector("[data-observation-chart]");
const source = document.getElementById("observation-series");

function draw() {
  if (!canvas || !source || !window.Chart) return;
  const series = JSON.parse(source.textContent);
  const lang = document.documentElement.lang || "fr";
  const dateFormat = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", year: "2-digit" });
  const points = series.points.map((p) => ({ x: Date.parse(p.t), y: p.v }));
  const datasets = [{ label: `${series.label} (${series.unit})`, data: points, borderColor: "#0b5d7a", backgroundColor: "#0b5d7a", pointRadius: points.length > 60 ? 0 : 3, borderWidth: 2 }];
  const band = (value, label) => ({ label, data: points.length ? [{ x: points[0].x, y: value }, { x: points[points.length - 1].x, y: value }] : [], borderColor: "#8a4b00", borderDash: [6, 4], pointRadius: 0, borderWidth: 1 });
  if (series.low !== null) datasets.push(band(series.low, canvas.dataset.lowLabel || "min"));
  if (series.high !== null) datasets.push(band(series.high, canvas.dataset.highLabel || "max"));
  new window.Chart(canvas, {
    type: "line",
    data: { datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      scales: { x: { type: "linear", ticks: { maxTicksLimit: 6, callback: (v) => dateFormat.format(new Date(v)) } } },
      plugins: { tooltip: { callbacks: { title: (items) => new Date(items[0].parsed.x).toLocaleString(lang) } } },
    },
  });
}

if (document.readyState === "complete") draw();
else window.addEventListener("load", draw);
