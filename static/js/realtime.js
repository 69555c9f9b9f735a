// Live notifications: one WebSocket per page on /ws/notifications/, reconnecting with back-off.
// Event shapes are declared in apps/core/realtime.py (EVENT_TYPES).

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_SESSION_ENDED = 4408;

function setUnread(count) {
  for (const badge of document.querySelectorAll("[data-unread-badge]")) {
    badge.hidden = count === 0;
    const number = badge.querySelector("[data-unread-count]");
    if (number) number.textContent = String(count);
  }
}

// The number of conversations with unread messages, on the "Messages" navigation item.
function setMessagingUnread(count) {
  for (const badge of document.querySelectorAll("[data-messaging-badge]")) {
    badge.hidden = count === 0;
    const number = badge.querySelector("[data-messaging-count]");
    if (number) number.textContent = String(count);
  }
}

function showToast(event) {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  const toast = document.createElement("div");
  toast.className = "toast";
  const title = document.createElement(event.link ? "a" : "strong");
  title.textContent = event.title;
  if (event.link) title.href = event.link;
  toast.append(title);
  region.append(toast);
  setTimeout(() => toast.remove(), 8000);
}

async function prependToLists(event) {
  const lists = document.querySelectorAll("[data-notification-list]");
  if (lists.length === 0) return;
  // The server renders the entry, so live and reloaded pages show the same markup.
  const response = await fetch(`/notifications/${event.id}/`, { credentials: "same-origin" });
  if (!response.ok) return;
  const html = await response.text();
  for (const list of lists) {
    list.querySelector("[data-empty]")?.remove();
    list.insertAdjacentHTML("afterbegin", html);
    if (window.htmx) window.htmx.process(list.firstElementChild);
  }
}

const handlers = {
  "notification.created": (event) => {
    setUnread(event.unread_count);
    prependToLists(event);
    showToast(event);
  },
  "notification.read": (event) => setUnread(event.unread_count),
  "messaging.unread": (event) => setMessagingUnread(event.threads),
  "session.closed": () => {
    window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
  },
};

function connect(attempt = 0) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/notifications/`);
  let heartbeat = null;
  socket.addEventListener("open", () => {
    attempt = 0;
    document.body.dataset.realtime = "connected";
    // Keeps this page counted as present (apps/core/presence.py) while it stays open.
    heartbeat = setInterval(() => socket.send(JSON.stringify({ type: "ping" })), 5 * 60 * 1000);
  });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    handlers[event.type]?.(event);
    document.dispatchEvent(new CustomEvent("vh:realtime", { detail: event }));
  });
  socket.addEventListener("close", (closed) => {
    clearInterval(heartbeat);
    document.body.dataset.realtime = "closed";
    if (closed.code === CLOSE_UNAUTHENTICATED || closed.code === CLOSE_SESSION_ENDED) return;
    const delay = Math.min(30000, 1000 * 2 ** attempt);
    setTimeout(() => connect(attempt + 1), delay);
  });
}

connect();
