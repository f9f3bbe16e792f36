// Shared pieces of every section: its frame, and its loading, empty and error states.

import { ApiError } from "./api";
import { h, replace } from "./dom";

export function section(id: string, title: string, hint: string | null, ...actions: HTMLElement[]) {
  const body = h("div", { className: "section-body" });
  const el = h(
    "section",
    { className: `panel panel-${id}`, id, "aria-labelledby": `${id}-title`, "data-state": "loading" },
    h(
      "div",
      { className: "panel-head" },
      h("div", null, h("h2", { id: `${id}-title` }, title), hint ? h("p", { className: "hint" }, hint) : null),
      actions.length ? h("div", { className: "panel-actions" }, ...actions) : null,
    ),
    body,
  );
  return { el, body };
}

export type SectionState = "loading" | "ready" | "empty" | "error";

export function setState(el: HTMLElement, state: SectionState): void {
  el.dataset.state = state;
  el.setAttribute("aria-busy", state === "loading" ? "true" : "false");
}

export function skeleton(lines = 3, tall = false): HTMLElement {
  return h(
    "div",
    { className: `skeleton${tall ? " skeleton-tall" : ""}`, "aria-hidden": "true" },
    ...Array.from({ length: lines }, () => h("span")),
  );
}

export function loading(body: HTMLElement, label: string, lines = 3, tall = false): void {
  replace(body, h("p", { className: "visually-hidden" }, label), skeleton(lines, tall));
}

export function empty(title: string, text: string | Node): HTMLElement {
  return h(
    "div",
    { className: "empty", role: "note" },
    h("p", { className: "empty-title" }, title),
    h("p", null, text),
  );
}

export function messageOf(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.kind === "forbidden") return `You do not have access to this: ${error.message}`;
    return error.message;
  }
  return "Something went wrong while loading this. Try again.";
}

export function errorBox(error: unknown, retry: () => void): HTMLElement {
  return h(
    "div",
    { className: "error", role: "alert" },
    h("p", { className: "error-title" }, "Could not load this part of the page"),
    h("p", null, messageOf(error)),
    h("button", { type: "button", className: "button", onclick: () => retry() }, "Try again"),
  );
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

export function toggleButton(label: string, pressedLabel: string, onToggle: (on: boolean) => void) {
  const button = h("button", { type: "button", className: "button button-quiet", "aria-pressed": "false" }, label);
  button.addEventListener("click", () => {
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? pressedLabel : label;
    onToggle(on);
  });
  return button;
}
