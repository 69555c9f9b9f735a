// Secure messaging pages, made live. Everything works without this script (plain forms and
// links); with it:
// - an open conversation follows /ws/messages/<thread>/: a new message is fetched rendered by
//   the server (access checked there again) and appended, then marked read; a read receipt
//   refreshes the status line under the conversation;
// - the reply form is sent in the background and the message appears without a reload;
// - the lists (patient's conversations, clinic inbox, a patient's conversations) listen to
//   `messaging.thread` (re-dispatched by realtime.js as the `vh:realtime` DOM event) and fetch
//   the thread's rendered row.
// Event shapes are declared in apps/core/realtime.py (EVENT_TYPES).

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_SESSION_ENDED = 4408;
const CLOSE_NOT_ALLOWED = 4404;

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

function fromHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

async function fetchHtml(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { "X-Requested-With": "fetch" },
  });
  if (response.status === 204) return "";
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.text();
}

function urlFor(template, id) {
  // The pages render the URL of object 0; the real id replaces it.
  return template.replace(/\/0\//, `/${id}/`);
}

// ---------------------------------------------------------------------------------------------
// An open conversation

function setUpConversation(list) {
  const threadId = list.dataset.thread;
  const messageUrl = list.dataset.messageUrl;
  const readUrl = list.dataset.readUrl;
  let unreadWhileHidden = false;

  async function refreshStatus() {
    const status = document.getElementById("thread-status");
    if (!status) return;
    try {
      const html = await fetchHtml(status.dataset.statusUrl);
      const fresh = fromHtml(html);
      // The content changes, not the element: screen readers keep following the live region.
      if (fresh) status.innerHTML = fresh.innerHTML;
    } catch {
      // The next event or a reload shows it.
    }
  }

  async function markRead() {
    if (document.visibilityState !== "visible") {
      unreadWhileHidden = true;
      return;
    }
    unreadWhileHidden = false;
    await fetch(readUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
    }).catch(() => {});
  }

  function insertMessage(html) {
    const item = fromHtml(html);
    if (!item || document.getElementById(item.id)) return false;
    list.append(item);
    return true;
  }

  async function onMessage(event) {
    if (document.getElementById(`message-${event.message}`)) return;
    try {
      const html = await fetchHtml(urlFor(messageUrl, event.message));
      if (insertMessage(html)) {
        const item = document.getElementById(`message-${event.message}`);
        item?.scrollIntoView({ block: "nearest" });
      }
    } catch {
      return;
    }
    refreshStatus();
    markRead();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && unreadWhileHidden) markRead();
  });

  function connect(attempt = 0) {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try {
      socket = new WebSocket(`${scheme}://${window.location.host}/ws/messages/${threadId}/`);
    } catch {
      return;
    }
    socket.addEventListener("open", () => {
      attempt = 0;
      list.dataset.live = "connected";
      // Whatever came between the page's rendering and the socket's opening.
      refreshStatus();
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (String(event.thread) !== String(threadId)) return;
      if (event.type === "messaging.message") onMessage(event);
      else if (event.type === "messaging.read") refreshStatus();
    });
    socket.addEventListener("close", (closed) => {
      list.dataset.live = "closed";
      if ([CLOSE_UNAUTHENTICATED, CLOSE_SESSION_ENDED, CLOSE_NOT_ALLOWED].includes(closed.code)) {
        return;
      }
      const delay = Math.min(30000, 1000 * 2 ** attempt);
      setTimeout(() => connect(attempt + 1), delay);
    });
  }

  if (list.hasAttribute("data-live")) connect();
  return { insertMessage, refreshStatus };
}

// ---------------------------------------------------------------------------------------------
// The reply form, sent in the background

function enhanceReplyForm(form, conversation) {
  form.addEventListener("submit", async (submitted) => {
    if (!window.fetch || !window.FormData) return;
    submitted.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
    } catch {
      // Offline or the server is unreachable: let the browser try the ordinary way.
      if (button) button.disabled = false;
      HTMLFormElement.prototype.submit.call(form);
      return;
    }
    const html = await response.text();
    if (response.status === 201) {
      conversation?.insertMessage(html);
      form.reset();
      if (button) button.disabled = false;
      conversation?.refreshStatus();
      form.querySelector("textarea")?.focus();
      return;
    }
    if (response.status === 400) {
      // The form comes back with its errors and the typed text (files must be chosen again).
      const fresh = fromHtml(html);
      if (fresh) {
        form.replaceWith(fresh);
        enhanceReplyForm(fresh, conversation);
        (fresh.querySelector("[role=alert]") || fresh).scrollIntoView({ block: "nearest" });
        fresh.querySelector("[aria-invalid=true], textarea")?.focus();
      }
      return;
    }
    // Anything else (signed out, access ended): the ordinary submission shows what happened.
    if (button) button.disabled = false;
    HTMLFormElement.prototype.submit.call(form);
  });
}

// ---------------------------------------------------------------------------------------------
// Lists of conversations

function setUpList(list) {
  const rowUrl = list.dataset.rowUrl;
  const onFirstPage = (list.dataset.page || "1") === "1";
  const announce = document.querySelector("[data-live-announce]");

  async function onThread(event) {
    const params = new URLSearchParams();
    if (list.dataset.tab) params.set("tab", list.dataset.tab);
    if (list.dataset.patient) params.set("patient", list.dataset.patient);
    const query = params.toString();
    const url = urlFor(rowUrl, event.thread) + (query ? `?${query}` : "");
    let html;
    try {
      html = await fetchHtml(url);
    } catch {
      return;
    }
    const existing = document.getElementById(`thread-${event.thread}`);
    const row = html ? fromHtml(html) : null;
    if (!row) {
      existing?.remove();
      return;
    }
    if (existing) existing.remove();
    else if (!onFirstPage) return;
    list.querySelector("[data-empty]")?.remove();
    // The lists are ordered by the last message: a changed thread goes to the top.
    list.prepend(row);
    if (announce && !existing) {
      announce.textContent = row.querySelector(".thread-title")?.textContent.trim() || "";
    }
  }

  document.addEventListener("vh:realtime", (dom) => {
    const event = dom.detail;
    if (event?.type === "messaging.thread") onThread(event);
  });
}

// ---------------------------------------------------------------------------------------------

const conversationList = document.querySelector("[data-conversation]");
const conversation = conversationList ? setUpConversation(conversationList) : null;
const replyForm = document.querySelector("[data-reply-form]");
if (replyForm) enhanceReplyForm(replyForm, conversation);
for (const list of document.querySelectorAll("[data-thread-list]")) setUpList(list);
