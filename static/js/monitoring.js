// Remote monitoring, live: the clinicians' dashboard (latest values, sparklines, alert banner)
// and a patient's monitoring tab (Chart.js charts). realtime.js re-dispatches each WebSocket
// event as a "vh:realtime" DOM event; shapes are in apps/core/realtime.py (EVENT_TYPES).

const root = document.querySelector("[data-monitoring]");
const texts = JSON.parse(document.getElementById("monitoring-texts")?.textContent || "{}");
const lang = document.documentElement.lang || "fr";
const SOUND_KEY = "vh.monitoring.sound";
const UNHANDLED = new Set(["open", "escalated"]);
const SEVERITY_RANK = { info: 0, warning: 1, critical: 2 };
const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
const charts = new Map();

function format(template, values) {
  return (template || "").replace(/%\((\w+)\)s/g, (_match, key) => String(values[key] ?? ""));
}

function capfirst(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

function counted(n) {
  const form = new Intl.PluralRules(lang).select(n) === "one" ? "one" : "other";
  return format(texts.alert_count?.[form], { n });
}

function mark(name, value) {
  document.body.dataset[name] = value;
}

// --- sound -----------------------------------------------------------------------------------
// Browsers keep audio off until the person interacts with the page: until then the banner alone
// tells, silently. The choice is remembered per browser.

let audio = null;

function soundWanted() {
  try {
    return localStorage.getItem(SOUND_KEY) !== "off";
  } catch {
    return true;
  }
}

function unlockAudio() {
  try {
    audio ??= new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch {
    audio = null;
  }
}

function beep(severity) {
  if (!soundWanted() || !audio || audio.state !== "running") {
    mark("monitoringSound", "silent");
    return;
  }
  const tones = severity === "critical" ? [0, 0.35] : [0];
  for (const offset of tones) {
    const start = audio.currentTime + offset;
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = severity === "critical" ? 880 : 660;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.28);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(start);
    oscillator.stop(start + 0.3);
  }
  mark("monitoringSound", "played");
}

function setUpSoundToggle() {
  const button = document.querySelector("[data-sound-toggle]");
  if (!button) return;
  button.hidden = false;
  button.setAttribute("aria-pressed", String(soundWanted()));
  button.addEventListener("click", () => {
    const on = !soundWanted();
    try {
      localStorage.setItem(SOUND_KEY, on ? "on" : "off");
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    button.setAttribute("aria-pressed", String(on));
  });
  for (const kind of ["pointerdown", "keydown"]) {
    document.addEventListener(kind, unlockAudio, { once: true, capture: true });
  }
}

// --- latest values and sparklines (dashboard) ------------------------------------------------

function liveTime(at) {
  const time = document.createElement("time");
  time.dateTime = at;
  time.title = new Date(at).toLocaleString(lang);
  time.dataset.liveTime = "";
  refreshTime(time);
  return time;
}

function refreshTime(time) {
  const seconds = Math.round((Date.parse(time.dateTime) - Date.now()) / 1000);
  const minutes = Math.round(seconds / 60);
  const hours = Math.round(minutes / 60);
  if (Math.abs(seconds) < 60) time.textContent = relative.format(0, "minute");
  else if (Math.abs(minutes) < 60) time.textContent = relative.format(minutes, "minute");
  else if (Math.abs(hours) < 48) time.textContent = relative.format(hours, "hour");
  else time.textContent = relative.format(Math.round(hours / 24), "day");
}

function drawSparkline(row) {
  const svg = row.querySelector("[data-sparkline]");
  const line = row.querySelector("[data-spark-line]");
  if (!svg || !line) return;
  const width = Number(root.dataset.sparkWidth);
  const height = Number(root.dataset.sparkHeight);
  const period = Number(root.dataset.sparkPeriod);
  const start = Date.now() - period;
  const points = JSON.parse(row.dataset.points || "[]").filter(([t]) => t >= start);
  row.dataset.points = JSON.stringify(points);
  if (points.length === 0) return;
  const values = points.map(([, v]) => v);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const spread = high - low || 1;
  const pad = 2;
  line.setAttribute(
    "points",
    points
      .map(([t, v]) => {
        const x = Math.max(0, Math.min(width, ((t - start) / period) * width));
        const y = low === high ? height / 2 : pad + ((high - v) / spread) * (height - 2 * pad);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" "),
  );
  const title = row.querySelector("[data-spark-title]");
  const code = row.dataset.code;
  if (title) {
    title.textContent = format(texts.spark_title, {
      label: texts.measurements?.[code] ?? code,
      low: String(low),
      high: String(high),
      unit: texts.units?.[code] ?? "",
    });
  }
}

function newRow(card, code) {
  const template = root.querySelector("[data-row-template]");
  const row = template.content.firstElementChild.cloneNode(true);
  const id = `spark-${card.dataset.patient}-${code}`;
  row.dataset.code = code;
  row.querySelector("[data-label]").textContent = texts.measurements?.[code] ?? code;
  row.querySelector("[data-spark-title]").id = id;
  row.querySelector("[data-sparkline]").setAttribute("aria-labelledby", id);
  card.querySelector("[data-measurements]").append(row);
  card.querySelector("[data-no-reading]")?.remove();
  return row;
}

function updateRow(row, reading) {
  row.querySelector("[data-value]").textContent = String(reading.value);
  row.querySelector("[data-unit]").textContent = texts.units?.[reading.code] ?? reading.unit;
  row.className = row.className.replace(/\bstatus-\S+/, "").trim() + ` status-${reading.status}`;
  row.dataset.status = reading.status;
  const label = row.querySelector("[data-status-label]");
  label.hidden = false;
  label.querySelector("[data-status-text]").textContent = texts.status?.[reading.status] ?? reading.status;
  row.querySelector("[data-when]").replaceChildren(liveTime(reading.at));
  const points = JSON.parse(row.dataset.points || "[]");
  points.push([Date.parse(reading.at), reading.value]);
  points.sort((a, b) => a[0] - b[0]);
  row.dataset.points = JSON.stringify(points);
  drawSparkline(row);
  row.classList.remove("is-new");
  void row.offsetWidth; // restart the highlight
  row.classList.add("is-new");
}

function onDashboardReading(event) {
  const card = root.querySelector(`.monitor-patient[data-patient="${event.patient}"]`);
  if (!card) return false;
  for (const reading of event.readings) {
    const selector = `tr[data-code="${CSS.escape(reading.code)}"]`;
    updateRow(card.querySelector(selector) ?? newRow(card, reading.code), reading);
  }
  return true;
}

// --- charts (a patient's monitoring tab) -----------------------------------------------------

const LIMIT_COLOURS = { critical: "#b3261e", warning: "#8f3700", info: "#0b5d7a" };

function makeChart(figure, series) {
  const canvas = figure.querySelector("canvas");
  if (!canvas || !window.Chart) return;
  const period = Number(root.dataset.periodMs);
  const points = series.points.map((p) => ({ x: Date.parse(p.t), y: p.v }));
  const edges = () => [Date.now() - period, Date.now()];
  const datasets = [
    {
      label: `${series.label} (${series.unit})`,
      data: points,
      borderColor: "#0b5d7a",
      backgroundColor: "#0b5d7a",
      pointRadius: points.length > 60 ? 0 : 3,
      borderWidth: 2,
    },
  ];
  for (const limit of series.limits || []) {
    const [from, to] = edges();
    datasets.push({
      label: format(limit.kind === "above" ? texts.limit_above : texts.limit_below, {
        value: limit.text,
        unit: series.unit,
      }),
      data: [{ x: from, y: limit.value }, { x: to, y: limit.value }],
      borderColor: LIMIT_COLOURS[limit.severity] || "#8f3700",
      borderDash: [6, 4],
      pointRadius: 0,
      borderWidth: 1,
      isLimit: true,
    });
  }
  const day = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short" });
  const hour = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
  const short = period <= 2 * 24 * 3600 * 1000;
  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      scales: {
        x: {
          type: "linear",
          min: edges()[0],
          ticks: { maxTicksLimit: 5, callback: (v) => (short ? hour : day).format(new Date(v)) },
        },
      },
      plugins: {
        tooltip: { callbacks: { title: (items) => new Date(items[0].parsed.x).toLocaleString(lang) } },
      },
    },
  });
  charts.set(series.code, chart);
}

function newChart(code, unit) {
  const template = root.querySelector("[data-chart-template]");
  const figure = template.content.firstElementChild.cloneNode(true);
  const label = texts.measurements?.[code] ?? code;
  const plainUnit = texts.units?.[code] ?? unit;
  figure.dataset.chart = code;
  figure.querySelector("[data-chart-title]").textContent = `${capfirst(label)} (${plainUnit})`;
  figure.querySelector("canvas").setAttribute("aria-label", format(texts.chart_label, { label }));
  root.querySelector("[data-charts]").append(figure);
  root.querySelector("[data-no-chart]")?.setAttribute("hidden", "");
  makeChart(figure, { code, label, unit: plainUnit, points: [], limits: [] });
  return charts.get(code);
}

function onPatientReading(event) {
  if (String(event.patient) !== root.dataset.patient) return false;
  for (const reading of event.readings) {
    const chart = charts.get(reading.code) ?? newChart(reading.code, reading.unit);
    if (!chart) continue;
    const now = Date.now();
    const at = Date.parse(reading.at);
    chart.data.datasets[0].data.push({ x: at, y: reading.value });
    chart.data.datasets[0].data.sort((a, b) => a.x - b.x);
    for (const dataset of chart.data.datasets) {
      if (dataset.isLimit) dataset.data[1].x = Math.max(now, at);
    }
    chart.options.scales.x.min = now - Number(root.dataset.periodMs);
    chart.update("none");
    chart.canvas.closest("[data-chart]").dataset.lastValue = String(reading.value);
  }
  return true;
}

function drawCharts() {
  const source = document.getElementById("monitoring-charts");
  if (!source) return;
  for (const series of JSON.parse(source.textContent)) {
    const figure = root.querySelector(`[data-chart="${CSS.escape(series.code)}"]`);
    if (figure) makeChart(figure, series);
  }
}

// --- alerts banner ---------------------------------------------------------------------------

function parseCardAlerts(card) {
  const alerts = new Map();
  for (const pair of (card.dataset.alerts || "").split(" ").filter(Boolean)) {
    const [id, severity] = pair.split(":");
    alerts.set(id, severity);
  }
  return alerts;
}

function updateCard(patient, id, severity, unhandled) {
  const card = root.querySelector(`.monitor-patient[data-patient="${patient}"]`);
  if (!card) return;
  const alerts = parseCardAlerts(card);
  if (unhandled) alerts.set(String(id), severity);
  else alerts.delete(String(id));
  card.dataset.alerts = [...alerts].map(([key, value]) => `${key}:${value}`).join(" ");
  const highest = [...alerts.values()].sort((a, b) => SEVERITY_RANK[b] - SEVERITY_RANK[a])[0];
  card.classList.remove("severity-critical", "severity-warning", "severity-info");
  const summary = card.querySelector("[data-alert-summary]");
  if (!highest) {
    const calm = document.createElement("span");
    calm.className = "monitor-calm";
    calm.textContent = texts.no_alert;
    summary.replaceChildren(calm);
    return;
  }
  card.classList.add(`severity-${highest}`);
  const badge = document.createElement("span");
  badge.className = `badge severity-${highest}`;
  badge.textContent = counted(alerts.size);
  const note = document.createElement("span");
  note.className = "monitor-severity";
  note.textContent = format(texts.highest, { severity: texts.severities?.[highest] ?? highest });
  summary.replaceChildren(badge, " ", note);
}

function fillAlert(item, event) {
  const id = String(event.id);
  item.dataset.alertId = id;
  item.dataset.state = event.state;
  item.dataset.severity = event.severity;
  item.dataset.patient = String(event.patient);
  item.className = `alert-item severity-${event.severity}`;
  const badge = item.querySelector("[data-alert-severity]");
  badge.className = `badge severity-${event.severity}`;
  badge.textContent = capfirst(texts.severities?.[event.severity] ?? event.severity);
  const patient = item.querySelector("[data-alert-patient]");
  patient.textContent = event.patient_name;
  patient.href = format(texts.patient_url, { pid: event.patient });
  const link = item.querySelector("[data-alert-link]");
  link.textContent = event.summary;
  link.href = event.url;
  item.querySelector("[data-alert-state]").textContent = capfirst(texts.states?.[event.state] ?? event.state);
  item.querySelector("[data-alert-by]").textContent = event.handled_by
    ? format(texts.handled_by, { name: event.handled_by })
    : "";
  const time = item.querySelector("[data-alert-time]");
  time.dateTime = event.measured_at;
  time.textContent = new Date(event.measured_at).toLocaleString(lang);
  const form = item.querySelector("[data-ack-form]");
  form.action = event.url;
  const note = form.querySelector("[data-ack-note]");
  note.id = `ack-note-${id}`;
  form.querySelector("label").htmlFor = note.id;
  item.querySelector("[data-ack]").hidden = !UNHANDLED.has(event.state);
}

function onAlert(event) {
  const banner = root.querySelector("[data-alert-banner]");
  if (!banner) return;
  const only = banner.dataset.patientFilter;
  if (only && String(event.patient) !== only) return;
  const list = banner.querySelector("[data-alert-list]");
  let item = list.querySelector(`[data-alert-id="${event.id}"]`);
  const unhandled = UNHANDLED.has(event.state);
  updateCard(event.patient, event.id, event.severity, unhandled);
  if (event.state === "resolved") {
    item?.remove();
  } else {
    const before = item?.dataset.state;
    if (!item) {
      item = banner.querySelector("[data-alert-template]").content.firstElementChild.cloneNode(true);
      list.prepend(item);
    }
    fillAlert(item, event);
    const newlyUrgent = unhandled && before !== event.state && event.severity !== "info";
    if (newlyUrgent) {
      banner.querySelector("[data-alert-announce]").textContent = format(texts.new_alert, {
        patient: event.patient_name,
        summary: event.summary,
      });
      beep(event.severity);
    }
  }
  const announce = banner.querySelector("[data-alert-announce]");
  if (!list.querySelector(`[data-state="open"], [data-state="escalated"]`)) announce.textContent = "";
  banner.querySelector("[data-alert-empty]").hidden = list.children.length > 0;
  mark("monitoringAlert", `${event.id}:${event.state}`);
}

async function acknowledge(form) {
  const button = form.querySelector("button[type=submit]");
  const error = form.querySelector("[data-ack-error]");
  const item = form.closest("[data-alert-id]");
  button.disabled = true;
  error.hidden = true;
  try {
    // The alert page handles the form (and audits it); it answers with the alert's page.
    const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const refusal = page.querySelector(".message-error");
    if (!response.ok || refusal) throw new Error(refusal?.textContent || "");
    item.dataset.state = "acknowledged";
    item.querySelector("[data-alert-state]").textContent = capfirst(texts.states?.acknowledged);
    item.querySelector("[data-ack]").hidden = true;
    updateCard(item.dataset.patient, item.dataset.alertId, item.dataset.severity, false);
    const announce = root.querySelector("[data-alert-announce]");
    if (announce && !root.querySelector(`[data-alert-list] [data-state="open"], [data-alert-list] [data-state="escalated"]`)) {
      announce.textContent = "";
    }
    mark("monitoringAlert", `${item.dataset.alertId}:acknowledged`);
  } catch (failure) {
    error.textContent = failure.message || texts.ack_failed;
    error.hidden = false;
    button.disabled = false;
  }
}

// --- wiring ----------------------------------------------------------------------------------

function start() {
  if (!root) return;
  setUpSoundToggle();
  const kind = root.dataset.monitoring;
  document.addEventListener("vh:realtime", (domEvent) => {
    const event = domEvent.detail;
    if (event.type === "monitoring.reading") {
      const shown = kind === "dashboard" ? onDashboardReading(event) : onPatientReading(event);
      if (shown) mark("monitoringReading", `${event.patient}:${event.readings.at(-1)?.at}`);
    } else if (event.type === "monitoring.alert") {
      onAlert(event);
    }
  });
  root.addEventListener("submit", (domEvent) => {
    const form = domEvent.target.closest("[data-ack-form]");
    if (!form) return;
    domEvent.preventDefault();
    acknowledge(form);
  });
  setInterval(() => document.querySelectorAll("time[data-live-time]").forEach(refreshTime), 60_000);
  if (kind === "patient") {
    if (window.Chart) drawCharts();
    else window.addEventListener("load", drawCharts, { once: true });
  }
  mark("monitoring", "ready");
}

start();
