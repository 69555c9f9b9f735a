// Draws the aging report's open balances per bucket as bars (Chart.js, loaded before this).
const canvas = document.querySelector("[data-aging-chart]");
const source = document.getElementById("aging-data");

function draw() {
  if (!canvas || !source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const lang = document.documentElement.lang || "fr";
  const money = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        {
          label: canvas.dataset.datasetLabel || "CHF",
          data: data.totals,
          // Darker as the debt gets older: the eye goes to what needs a reminder first.
          backgroundColor: ["#6b9bb0", "#0b5d7a", "#8a4b00", "#b3461e", "#7a1a12"],
        },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (item) => `CHF ${money.format(item.parsed.y)} (${data.counts[item.dataIndex]})`,
          },
        },
      },
      scales: { y: { beginAtZero: true, ticks: { callback: (value) => money.format(value) } } },
    },
  });
}

if (document.readyState === "complete") draw();
else window.addEventListener("load", draw);
