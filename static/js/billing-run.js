// Follows a batch billing run: asks its progress every second and updates the bar until done.
const section = document.querySelector("[data-billing-run]");

function text(selector, value) {
  const node = section.querySelector(selector);
  if (node) node.textContent = String(value);
}

function render(state) {
  const bar = section.querySelector("[data-run-bar]");
  bar.max = Math.max(state.total, 1);
  bar.value = state.done + state.failed;
  bar.textContent = `${state.done} / ${state.total}`;
  text("[data-run-label]", state.status_label);
  text("[data-run-done]", state.done);
  text("[data-run-total]", state.total);
  text("[data-run-failed]", state.failed);
  const errors = section.querySelector("[data-run-errors]");
  const list = section.querySelector("[data-run-error-list]");
  list.replaceChildren(
    ...state.errors.map((error) => {
      const item = document.createElement("li");
      item.textContent = `${error.patient}: ${error.error}`;
      return item;
    }),
  );
  errors.hidden = state.errors.length === 0;
  if (state.finished) {
    section.dataset.finished = "";
    section.querySelector("[data-run-done-links]").hidden = false;
  }
}

async function poll() {
  try {
    const response = await fetch(section.dataset.progressUrl, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (response.ok) {
      const state = await response.json();
      render(state);
      if (state.finished) return;
    }
  } catch {
    // The network dropped for a moment: the next tick tries again.
  }
  window.setTimeout(poll, 1000);
}

if (section && !("finished" in section.dataset)) window.setTimeout(poll, 1000);
