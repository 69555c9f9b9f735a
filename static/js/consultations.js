// The clinician's list of video consultations: live "waiting" badges.
// realtime.js re-dispatches every event of the page's socket as a `vh:realtime` DOM event;
// `consult.waiting` (apps/core/realtime.py) says who is waiting in a room right now.

const list = document.querySelector("[data-consultation-list]");
const announcer = document.querySelector("[data-live-announce]");

async function reload() {
  // A room created after the page was drawn (the patient opened it): redraw the list from the
  // server, so the markup stays the server's.
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.querySelector("[data-consultation-list]");
  if (fresh) list.replaceChildren(...fresh.childNodes);
}

function update(event) {
  const waiting = Array.isArray(event.waiting) ? event.waiting : [];
  const count = typeof event.waiting === "number" ? event.waiting : waiting.length;
  const row = list.querySelector(`[data-room="${CSS.escape(event.room)}"]`);
  if (!row) {
    reload();
  } else {
    const badge = row.querySelector("[data-waiting-badge]");
    badge.hidden = count === 0;
    badge.querySelector("[data-waiting-count]").textContent = String(count);
    badge.title = waiting.map((person) => person.name).join(", ");
  }
  if (count > 0 && announcer) {
    const names = waiting.map((person) => person.name).join(", ") || event.patient_name;
    announcer.textContent = `${names} — ${event.patient_name}`;
  }
  document.body.dataset.lastWaiting = `${event.room}:${count}`;
}

document.addEventListener("vh:realtime", (event) => {
  if (event.detail?.type === "consult.waiting") update(event.detail);
});
