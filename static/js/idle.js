// Staff idle timeout: warn one minute before the server ends the session.
const body = document.body;
const timeoutMs = Number(body.dataset.idleTimeout) * 1000;
const dialog = document.getElementById("idle-dialog");
let warnTimer;
let expireTimer;

function schedule() {
  clearTimeout(warnTimer);
  clearTimeout(expireTimer);
  warnTimer = setTimeout(() => dialog?.showModal(), Math.max(0, timeoutMs - 60000));
  expireTimer = setTimeout(() => {
    window.location.assign(`${body.dataset.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`);
  }, timeoutMs + 1000);
}

document.querySelector("[data-idle-stay]")?.addEventListener("click", async () => {
  const token = JSON.parse(body.getAttribute("hx-headers"))["X-CSRFToken"];
  const response = await fetch(body.dataset.keepaliveUrl, {
    method: "POST",
    headers: { "X-CSRFToken": token },
    credentials: "same-origin",
  });
  dialog?.close();
  if (response.ok) schedule();
  else window.location.reload();
});

// htmx requests refresh the session on the server too.
document.addEventListener("htmx:afterRequest", schedule);
schedule();
