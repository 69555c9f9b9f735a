// Follow-up pages: the adherence chart (Chart.js, loaded before this module) and, after a
// questionnaire is sent back with errors, focus on the list of what to correct.
const canvas = document.querySelector("[data-adherence-chart]");
const source = document.getElementById("adherence-series");

function draw() {
  if (!canvas || !source || !window.Chart) return;
  const series = JSON.parse(source.textContent);
  const lang = document.documentElement.lang || "fr";
  const dayFormat = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short" });
  const points = series.points || [];
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: points.map((p) => dayFormat.format(new Date(`${p.date}T12:00:00`))),
      datasets: [{ label: canvas.dataset.label || "%", data: points.map((p) => p.percent), backgroundColor: "#0b5d7a" }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { min: 0, max: 100, ticks: { callback: (v) => `${v} %` } }, x: { ticks: { maxTicksLimit: 8 } } },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (item) => { const p = points[item.dataIndex]; return `${p.percent} % (${p.taken}/${p.counted})`; } } },
      },
    },
  });
}

if (document.readyState === "complete") draw();
else window.addEventListener("load", draw);

const summary = document.querySelector("[data-error-summary]");
if (summary) summary.focus();
