// "Data as of …": when the figures on screen were read, refreshed on its own.

import { h, replace } from "../dom";
import { ago, clockTime } from "../format";

export const REFRESH_SECONDS = 30;

export class Freshness {
  readonly el: HTMLElement;
  private readonly text = h("span", { className: "freshness-text", role: "status" }, "Loading…");
  private readonly age = h("span", { className: "freshness-age", "aria-hidden": "true" });
  private readonly dot = h("span", { className: "dot", "aria-hidden": "true" });
  readonly refreshButton = h("button", { type: "button", className: "icon-button", title: "Refresh now", "aria-label": "Refresh now" }, "↻");
  private asOf: Date | null = null;
  private failed = false;

  constructor(onRefresh: () => void) {
    this.refreshButton.addEventListener("click", onRefresh);
    this.el = h("div", { className: "freshness" }, this.dot, this.text, this.age, this.refreshButton);
    setInterval(() => this.tick(), 1000);
  }

  loading(): void {
    this.el.classList.add("is-loading");
  }

  loaded(at: Date): void {
    this.asOf = at;
    this.failed = false;
    this.el.classList.remove("is-loading", "is-stale");
    replace(this.text, "Data as of ", h("time", { datetime: at.toISOString() }, `${clockTime(at)} UTC`));
    this.tick();
  }

  failedToRefresh(): void {
    this.failed = true;
    this.el.classList.remove("is-loading");
    this.el.classList.add("is-stale");
    if (!this.asOf) this.text.textContent = "Some figures could not be loaded";
    this.tick();
  }

  private tick(): void {
    if (!this.asOf) return;
    const seconds = (Date.now() - this.asOf.getTime()) / 1000;
    this.age.textContent = this.failed ? ` · update failed, retrying` : ` · ${ago(seconds)}`;
  }
}
