// Decision-support pages (chart tab and clinic list). Everything works without this script
// (plain forms and links); with it:
// - each proposal's series is drawn (daily means and the rule's target, Chart.js);
// - `care.proposal` events (re-dispatched by realtime.js as `vh:realtime`) refresh the proposal
//   that changed: the server renders it (access checked there again) and it replaces the old
//   one, moves to the decided list, or appears at the top of the open ones.
// Event shapes are declared in apps/core/realtime.py (EVENT_TYPES).

const charts = new Map();

function drawCharts(root = document) {
  if (!window.Chart) return;
  const lang = document.documentElement.lang || "fr";
  const dateFormat = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short" });
  for (const canvas of root.querySelectorAll("[data-proposal-chart]")) {
    const source = document.getElementById(canvas.dataset.proposalChart);
    if (!source || charts.has(canvas)) continue;
    const series = JSON.parse(source.textContent);
    const points = series.points.map((p) => ({ x: Date.parse(p.t), y: p.v }));
    const datasets = [
      { label: `${series.mean_label} — ${series.label}`, data: points, borderColor: "#0b5d7a", backgroundColor: "#0b5d7a", pointRadius: 3, borderWidth: 2 },
    ];
    if (series.target !== null && points.length) {
      datasets.push({
        label: series.target_label,
        data: [{ x: points[0].x, y: series.target }, { x: points[points.length - 1].x, y: series.target }],
        borderColor: "#8a4b00",
        borderDash: [6, 4],
        pointRadius: 0,
        borderWidth: 1,
      });
    }
    charts.set(
      canvas,
      new window.Chart(canvas, {
        type: "line",
        data: { datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          parsing: false,
          scales: { x: { type: "linear", ticks: { maxTicksLimit: 5, callback: (v) => dateFormat.format(new Date(v)) } } },
        },
      }),
    );
  }
}

function fromHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

async function fetchFragment(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
  if (!response.ok) return null; // 404: no longer ours to see
  return fromHtml(await response.text());
}

function announce(text) {
  const status = document.querySelector("[data-proposals-status]");
  if (status && text) status.textContent = text;
}

function fragmentUrl(container, id, row) {
  // The page renders the URL of proposal 0; the real id replaces it.
  const url = container.dataset.fragmentUrl.replace(/\/0\/$/, `/${id}/`);
  return row ? `${url}?row=1` : url;
}

async function refreshCard(section, event) {
  const fresh = await fetchFragment(fragmentUrl(section, event.id, false));
  if (!fresh) return;
  const old = document.getElementById(fresh.id);
  const openList = section.querySelector("[data-open-proposals]");
  const decidedList = section.querySelector("[data-decided-proposals]");
  // Someone typing a reason in this very proposal keeps their text until they send it.
  if (old && old.contains(document.activeElement) && fresh.dataset.status === "open") return;
  old?.remove();
  const target = fresh.dataset.status === "open" ? openList : decidedList;
  target.querySelector("[data-empty]")?.remove();
  target.prepend(fresh);
  drawCharts(fresh);
  announce(fresh.querySelector("h4")?.textContent?.trim());
}

async function refreshRow(table, event) {
  const old = document.getElementById(`proposal-row-${event.id}`);
  if (event.status !== "open") {
    old?.remove();
    return;
  }
  const fresh = await fetchFragment(fragmentUrl(table, event.id, true));
  if (!fresh) return;
  const body = table.querySelector("[data-rows]");
  body.querySelector("[data-empty]")?.remove();
  if (old) old.replaceWith(fresh);
  else body.prepend(fresh);
  announce(fresh.querySelector("strong")?.textContent?.trim());
}

document.addEventListener("vh:realtime", (dom) => {
  const event = dom.detail;
  if (event.type !== "care.proposal") return;
  const section = document.querySelector("[data-proposals]");
  if (section && String(event.patient) === section.dataset.patient) refreshCard(section, event).catch(() => {});
  const table = document.querySelector("[data-proposal-list]");
  if (table) refreshRow(table, event).catch(() => {});
});

if (document.readyState === "complete") drawCharts();
else window.addEventListener("load", () => drawCharts());
