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

function prependToLists(event) {
  for (const list of document.querySelectorAll("[data-notification-list]")) {
    list.querySelector("[data-empty]")?.remove();
    const item = document.createElement("li");
    item.className = "notification unread";
    item.id = `notification-${event.id}`;
    const wrapper = document.createElement("div");
    const strong = document.createElement("strong");
    if (event.link) {
      const link = document.createElement("a");
      link.href = event.link;
      link.textContent = event.title;
      strong.append(link);
    } else {
      strong.textContent = event.title;
    }
    wrapper.append(strong);
    if (event.body) {
      const body = document.createElement("p");
      body.textContent = event.body;
      wrapper.append(body);
    }
    item.append(wrapper);
    list.prepend(item);
  }
}

const handlers = {
  "notification.created": (event) => {
    setUnread(event.unread_count);
    prependToLists(event);
    showToast(event);
  },
  "notification.read": (event) => setUnread(event.unread_count),
  "session.closed": () => {
    window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
  },
};

function connect(attempt = 0) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/notifications/`);
  socket.addEventListener("open", () => { attempt = 0; document.body.dataset.realtime = "connected"; });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    handlers[event.type]?.(event);
    document.dispatchEvent(new CustomEvent("vh:realtime", { detail: event }));
  });
  socket.addEventListener("close", (closed) => {
    document.body.dataset.realtime = "closed";
    if (closed.code === CLOSE_UNAUTHENTICATED || closed.code === CLOSE_SESSION_ENDED) return;
    const delay = Math.min(30000, 1000 * 2 ** attempt);
    setTimeout(() => connect(attempt + 1), delay);
  });
}

connect();
