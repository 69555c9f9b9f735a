// The meeting page (templates/care/meetings/detail.html).
// - "Add a follow-up action" adds a row to a decision form (from the case's <template>).
// - Live: a `care.meeting` event (re-dispatched by realtime.js as the `vh:realtime` DOM event)
//   for this meeting refreshes the changed case, or the whole agenda, from server-rendered
//   fragments; a part someone is typing in is left alone and the change is announced instead.
// Event shapes are declared in apps/core/realtime.py (EVENT_TYPES).

const live = document.querySelector("[data-meeting-live]");
const strings = JSON.parse(document.getElementById("meeting-strings")?.textContent || "{}");

function announce(text) {
  const region = document.querySelector("[data-live-announce]");
  if (region) region.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Follow-up action rows

function addActionRow(button) {
  const form = button.closest("[data-decision-form]");
  const rows = form?.querySelector("[data-action-rows]");
  const template = form?.querySelector("template[data-action-template]");
  if (!rows || !template) return;
  const next = rows.querySelectorAll("fieldset").length;
  const html = template.innerHTML.replaceAll("__n__", String(next));
  rows.insertAdjacentHTML("beforeend", html);
  rows.lastElementChild?.querySelector("input")?.focus();
}

// ---------------------------------------------------------------------------------------------
// Live updates

function busy(element) {
  // Someone is typing here: a form changed since the page loaded, or focus is inside it.
  if (element.querySelector("form[data-dirty]")) return true;
  const active = document.activeElement;
  return Boolean(active && element.contains(active) && active.closest("form[data-edit-form]"));
}

async function fetchFragment(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { "X-Requested-With": "fetch" },
  });
  if (response.status === 404) {
    // No longer a participant: the page itself is not ours any more.
    window.location.reload();
    return null;
  }
  return response.ok ? response.text() : null;
}

async function refreshCase(caseId) {
  const item = live.querySelector(`[data-case="${caseId}"]`);
  if (!item) return refreshAll();
  if (busy(item)) {
    announce(strings.changed_elsewhere || "");
    return;
  }
  const html = await fetchFragment(item.dataset.caseUrl);
  if (html !== null) {
    item.innerHTML = html;
    announce(strings.case_updated || "");
  }
}

async function refreshAll() {
  if (busy(live)) {
    announce(strings.changed_elsewhere || "");
    return;
  }
  const html = await fetchFragment(live.dataset.liveUrl);
  if (html !== null) {
    live.innerHTML = html;
    announce(strings.agenda_updated || "");
  }
}

function onMeeting(event) {
  if (String(event.meeting) !== live.dataset.meeting) return;
  if (!event.url || event.status !== live.dataset.status) {
    // Removed from the meeting, or it started, closed or was cancelled: the page's buttons
    // change with the status, so the whole page is read again (unless someone is typing).
    if (!busy(live)) window.location.reload();
    else announce(strings.changed_elsewhere || "");
    return;
  }
  if (event.case) refreshCase(event.case);
  else refreshAll();
}

if (live) {
  live.addEventListener("click", (event) => {
    const button = event.target.closest("[data-add-action]");
    if (button) addActionRow(button);
  });
  live.addEventListener("input", (event) => {
    event.target.closest("form")?.setAttribute("data-dirty", "");
  });
  document.addEventListener("vh:realtime", (dom) => {
    const event = dom.detail;
    if (event?.type === "care.meeting") onMeeting(event);
  });
}
