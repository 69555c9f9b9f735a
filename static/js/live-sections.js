// Server-rendered lists made live. The page works without this script (a reload shows
// changes); with it, an element `[data-live-page]` names the realtime events that concern it:
//
//   data-live-events='[{"type": "care.plan", "patient": "12"},
//                      {"type": "notification.created", "kind": ["care.reminder"]}]'
//
// (an event matches when its type is the same and each other key equals the given value, or
// one of the given values). On a match the page fetches itself again (access is checked by the
// server again) and replaces each `[data-live-section="name"]` with the section of the same
// name in the fresh page. With `data-live-url` it fetches that address instead, whose answer is
// the new content of the page's one section (a server-rendered fragment). The reader keeps
// their place and focus, a `[data-live-announce]` region says what changed to screen readers,
// and the container receives a `vh:live-refreshed` event (to redraw charts, say). Events
// arrive through realtime.js as the `vh:realtime` DOM event (shapes: apps/core/realtime.py).

const root = document.querySelector("[data-live-page]");

function matches(rule, event) {
  if (rule.type !== event.type) return false;
  return Object.entries(rule).every(([key, wanted]) => {
    if (key === "type") return true;
    const value = String(event[key]);
    return Array.isArray(wanted) ? wanted.map(String).includes(value) : String(wanted) === value;
  });
}

function setUp(container) {
  let rules = [];
  try {
    rules = JSON.parse(container.dataset.liveEvents || "[]");
  } catch {
    return;
  }
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
      const fragment = container.dataset.liveUrl;
      const response = await fetch(fragment || window.location.href, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
      if (response.ok) {
        const html = await response.text();
        const fresh = fragment ? null : new DOMParser().parseFromString(html, "text/html");
        // Keep the reader where they were: the sections change, the page does not jump.
        const focusedId = document.activeElement?.closest("[id]")?.id;
        for (const section of container.querySelectorAll("[data-live-section]")) {
          const name = section.dataset.liveSection;
          if (fresh) {
            const replacement = fresh.querySelector(`[data-live-section="${CSS.escape(name)}"]`);
            if (!replacement) continue;
            section.innerHTML = replacement.innerHTML;
          } else {
            section.innerHTML = html;
          }
          // Buttons answered in place (htmx) work in the new content too.
          window.htmx?.process(section);
        }
        if (focusedId) document.getElementById(focusedId)?.querySelector("button, a")?.focus({ preventScroll: true });
        container.dispatchEvent(new CustomEvent("vh:live-refreshed"));
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
    if (event && rules.some((rule) => matches(rule, event))) refresh();
  });
  container.dataset.live = "ready";
}

if (root) setUp(root);
