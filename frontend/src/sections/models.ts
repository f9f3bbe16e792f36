// The period's models, biggest first: the legend of the daily chart as figures.

import { colorFor } from "../charts";
import { h, replace } from "../dom";
import { count, exactMoney, money, percent } from "../format";
import type { LlmData } from "./llm";
import { empty, loading, section, setState } from "../ui";

export class ModelsSection {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;

  constructor() {
    const frame = section("models", "LLM spend by model", "The period's models, biggest first, with their share of LLM spend.");
    this.el = frame.el;
    this.body = frame.body;
  }

  loading(): void {
    setState(this.el, "loading");
    loading(this.body, "Loading models", 4);
  }

  /** Drawn from the daily chart's answer: no query of its own. */
  render(data: LlmData | null): void {
    if (!data) {
      setState(this.el, "error");
      replace(this.body, empty("Not available", "The daily chart above could not be loaded."));
      return;
    }
    if (data.models.length === 0) {
      setState(this.el, "empty");
      replace(this.body, empty("No models used in this period", "Models appear once a request goes through a virtual key."));
      return;
    }
    setState(this.el, "ready");
    const total = data.models.reduce((sum, m) => sum + m.totalMicros, 0);
    replace(
      this.body,
      h(
        "div",
        { className: "table-scroll" },
        h(
          "table",
          { className: "data-table" },
          h("caption", { className: "visually-hidden" }, "LLM spend by model in the period"),
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Model"), h("th", { scope: "col", className: "col-provider" }, "Provider"), h("th", { scope: "col", className: "num" }, "Requests"), h("th", { scope: "col", className: "num" }, "Cost"), h("th", { scope: "col", className: "num" }, "Cached input"), h("th", { scope: "col", className: "num", title: "What prompt caching saved against the same tokens uncached" }, "Caching saved"), h("th", { scope: "col" }, "Share"))),
          h(
            "tbody",
            null,
            data.models.map((m, i) => {
              const share = total ? (m.totalMicros * 100) / total : 0;
              return h(
                "tr",
                null,
                h("th", { scope: "row" }, h("span", { className: "swatch", style: `background:${colorFor(i)}`, "aria-hidden": "true" }), m.model),
                h("td", { className: "col-provider" }, m.provider),
                h("td", { className: "num" }, count(m.requestCount)),
                h("td", { className: "num", title: exactMoney(m.totalMicros / 1e6) }, money(m.totalMicros / 1e6)),
                h("td", { className: "num model-cached" }, count(m.cachedInputTokens)),
                h("td", { className: "num model-saved", title: exactMoney(m.cacheSavedMicros / 1e6) }, money(m.cacheSavedMicros / 1e6)),
                h("td", null, h("span", { className: "share", "aria-hidden": "true" }, h("span", { style: `width:${share}%;background:${colorFor(i)}` })), percent(share)),
              );
            }),
          ),
        ),
      ),
    );
  }
}
