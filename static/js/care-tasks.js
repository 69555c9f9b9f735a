// Case-management tasks, made live. Everything works without this script (plain forms and
// links); with it, pages follow `care.task` events of the user socket (re-dispatched by
// realtime.js as the `vh:realtime` DOM event):
// - task lists ("My tasks", the chart's "Tasks" tab) fetch the changed task's row, rendered by
//   the server for the tab shown (204: it left the tab), and the tabs with their counts;
// - an open task page fetches its status, history and notes again.
// Event shapes are declared in apps/core/realtime.py (EVENT_TYPES).

const CLOSED = ["completed", "cancelled"];

async function fetchHtml(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { "X-Requested-With": "fetch" },
  });
  if (response.status === 204) return "";
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.text();
}

function fromHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function urlFor(template, id) {
  // The pages render the URL of task 0; the real id replaces it.
  return template.replace(/\/0\//, `/${id}/`);
}

function announce(text) {
  const region = document.querySelector("[data-live-announce]");
  if (region && text) region.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Lists

async function refreshTabs() {
  const nav = document.querySelector("[data-task-tabs]");
  if (!nav) return;
  try {
    const html = await fetchHtml(nav.dataset.tabsUrl);
    if (html) nav.innerHTML = html;
  } catch {
    // The next event or a reload shows the counts.
  }
}

function setUpList(list) {
  const rowUrl = list.dataset.rowUrl;
  const onFirstPage = (list.dataset.page || "1") === "1";

  async function onTask(event) {
    if (list.dataset.patient && String(event.patient) !== list.dataset.patient) return;
    const params = new URLSearchParams();
    if (list.dataset.tab) params.set("tab", list.dataset.tab);
    if (list.dataset.patient) params.set("patient", list.dataset.patient);
    let html;
    try {
      html = await fetchHtml(`${urlFor(rowUrl, event.id)}?${params}`);
    } catch {
      return;
    }
    const existing = document.getElementById(`task-${event.id}`);
    const row = html ? fromHtml(html) : null;
    if (!row) {
      existing?.remove();
    } else if (existing) {
      existing.replaceWith(row);
    } else if (onFirstPage) {
      list.querySelector("[data-empty]")?.remove();
      // A new task goes first: the list shows it until a reload puts it in its place.
      list.prepend(row);
    }
    if (row) {
      const title = row.querySelector(".thread-title")?.textContent.trim() || "";
      const status = row.querySelector("[data-task-status]")?.textContent.trim() || "";
      announce(`${title} — ${status}`);
    }
    refreshTabs();
  }

  document.addEventListener("vh:realtime", (dom) => {
    const event = dom.detail;
    if (event?.type === "care.task") onTask(event);
  });
}

// ---------------------------------------------------------------------------------------------
// One task

function setUpTask(page) {
  const live = page.querySelector("[data-task-live]");
  const actions = page.querySelector("[data-task-actions]");

  async function onTask(event) {
    if (String(event.id) !== page.dataset.task) return;
    let html;
    try {
      html = await fetchHtml(page.dataset.liveUrl);
    } catch {
      return;
    }
    if (!html || !live) return;
    // The content changes, not the element: what is being typed in the forms stays.
    live.innerHTML = html;
    if (actions) actions.hidden = CLOSED.includes(event.status);
    announce(live.querySelector("[data-task-status]")?.textContent.trim() || "");
  }

  document.addEventListener("vh:realtime", (dom) => {
    const event = dom.detail;
    if (event?.type === "care.task") onTask(event);
  });
}

for (const list of document.querySelectorAll("[data-task-list]")) setUpList(list);
const taskPage = document.querySelector("[data-task-page]");
if (taskPage) setUpTask(taskPage);
