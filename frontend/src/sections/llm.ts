// The stacked bar chart of daily LLM spend, a segment per model; a click opens that day's log.

import { execute } from "../api";
import { StackedDailyChart, colorFor, type Series } from "../charts";
import { h, replace } from "../dom";
import { count, exactMoney, longDay, money, shortDay, toMicros } from "../format";
import { LlmDailyChartDocument } from "../generated/graphql";
import type { Scope } from "../scope";
import type { LogSelection } from "../state";
import { empty, section, setState, toggleButton } from "../ui";
import { LoadedSection } from "./lifecycle";

export interface ModelSeries {
  model: string;
  provider: string;
  totalMicros: number;
  requestCount: number;
  /** input tokens read from the prompt cache, and what that saved (micro-cents) */
  cachedInputTokens: number;
  cacheSavedMicros: number;
  /** per day of the period: cost in micro-cents and request count */
  micros: number[];
  counts: number[];
}

export interface LlmData {
  days: string[];
  totalCents: number;
  requestCount: number;
  models: ModelSeries[];
}

/** One chart from one or several (one per provider) answers, summed in micro-cents. */
export function mergeLlm(days: string[], answers: { daily: { date: string; models: { model: string; provider: string; totalCents: number; requestCount: number; cachedInputTokens?: number; cacheSavedCents?: number }[] }[] }[]): LlmData {
  const index = new Map(days.map((d, i) => [d, i]));
  const series = new Map<string, ModelSeries>();
  for (const answer of answers) {
    for (const day of answer.daily) {
      const i = index.get(day.date);
      if (i === undefined) continue;
      for (const m of day.models) {
        const id = `${m.provider}\u0000${m.model}`;
        let s = series.get(id);
        if (!s) {
          s = { model: m.model, provider: m.provider, totalMicros: 0, requestCount: 0, cachedInputTokens: 0, cacheSavedMicros: 0, micros: days.map(() => 0), counts: days.map(() => 0) };
          series.set(id, s);
        }
        const micros = toMicros(m.totalCents);
        s.micros[i] = (s.micros[i] ?? 0) + micros;
        s.counts[i] = (s.counts[i] ?? 0) + m.requestCount;
        s.totalMicros += micros;
        s.requestCount += m.requestCount;
        s.cachedInputTokens += m.cachedInputTokens ?? 0;
        s.cacheSavedMicros += toMicros(m.cacheSavedCents ?? 0);
      }
    }
  }
  const models = [...series.values()].sort((a, b) => b.totalMicros - a.totalMicros || a.model.localeCompare(b.model));
  const totalMicros = models.reduce((sum, m) => sum + m.totalMicros, 0);
  const requestCount = models.reduce((sum, m) => sum + m.requestCount, 0);
  return { days, totalCents: totalMicros / 1e6, requestCount, models };
}

export class LlmSection extends LoadedSection<LlmData> {
  private readonly chartBox: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly tableBox: HTMLElement;
  private readonly chart: StackedDailyChart;
  private showTable = false;

  constructor(private readonly openLog: (selection: LogSelection) => void) {
    const tableToggle = toggleButton("Show as table", "Hide table", (on) => {
      this.showTable = on;
      this.render();
    });
    super(
      section(
        "llm",
        "Daily LLM spend by model",
        "One bar per UTC day, one colour per model. Click a segment for that day's requests.",
        tableToggle,
      ),
      { label: "Loading daily LLM spend", lines: 6, tall: true },
    );
    this.canvas = h("canvas", { role: "img", "aria-label": "Daily LLM spend by model" });
    this.chartBox = h("div", { className: "chart-box chart-box-large" }, this.canvas);
    this.tableBox = h("div", { className: "table-scroll" });
    this.chart = new StackedDailyChart("llm", this.canvas, (dayIndex, seriesIndex) => {
      const day = this.data?.days[dayIndex];
      const model = this.data?.models[seriesIndex];
      if (day && model) this.openLog({ date: day, model: model.model, provider: model.provider, keyId: null });
    });
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<LlmData> {
    const answers = await Promise.all(scope.llm.map((filter) => execute(LlmDailyChartDocument, { filter }, signal)));
    return mergeLlm(scope.period.days, answers.map((a) => a.usage.llm));
  }

  protected override cleared(): void {
    this.chart.destroy();
  }

  /** Draws this.data: called on each answer and when the table is toggled. */
  protected override render(): void {
    const data = this.data;
    if (!data) return;
    if (data.requestCount === 0) {
      this.chart.destroy();
      setState(this.el, "empty");
      replace(
        this.body,
        empty("No LLM requests in this period", "Requests made through your virtual keys appear here within a second."),
      );
      return;
    }
    setState(this.el, "ready");
    const duplicated = new Set<string>();
    const seen = new Set<string>();
    for (const m of data.models) (seen.has(m.model) ? duplicated : seen).add(m.model);
    const series: Series[] = data.models.map((m, i) => ({
      label: duplicated.has(m.model) ? `${m.model} (${m.provider})` : m.model,
      color: colorFor(i),
      values: m.micros.map((v) => v / 1e6),
      detail: (day) => `${count(m.counts[day] ?? 0)} requests`,
    }));
    const biggest = data.models[0];
    this.canvas.setAttribute(
      "aria-label",
      `Daily LLM spend by model, ${shortDay(data.days[0] ?? "")} to ${shortDay(data.days.at(-1) ?? "")}: ` +
        `${money(data.totalCents)} in ${count(data.requestCount)} requests` +
        (biggest ? `; biggest model ${biggest.model} at ${money(biggest.totalMicros / 1e6)}` : "") +
        ". Use “Show as table” for the figures.",
    );
    const headline = h(
      "p",
      { className: "headline" },
      h("strong", { "data-cents": data.totalCents, className: "figure" }, money(data.totalCents)),
      ` in ${count(data.requestCount)} requests across ${data.models.length} model${data.models.length === 1 ? "" : "s"}`,
    );
    if (!this.body.contains(this.chartBox)) replace(this.body, headline, this.chartBox, this.tableBox);
    else this.body.firstElementChild?.replaceWith(headline);
    this.chart.update(data.days, series);
    this.tableBox.hidden = !this.showTable;
    replace(this.tableBox, this.showTable ? this.table(data, series) : null);
  }

  private table(data: LlmData, series: Series[]): HTMLElement {
    return h(
      "table",
      { className: "data-table" },
      h("caption", null, "Daily LLM spend by model (USD). Select an amount to open that day's requests."),
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Day"), ...series.map((s) => h("th", { scope: "col" }, s.label)), h("th", { scope: "col" }, "Total"))),
      h(
        "tbody",
        null,
        data.days.map((day, i) => {
          const totalMicros = data.models.reduce((sum, m) => sum + (m.micros[i] ?? 0), 0);
          return h(
            "tr",
            null,
            h("th", { scope: "row" }, longDay(day)),
            data.models.map((m) => {
              const micros = m.micros[i] ?? 0;
              if (micros === 0) return h("td", { className: "num muted" }, "—");
              return h(
                "td",
                { className: "num" },
                h(
                  "button",
                  {
                    type: "button",
                    className: "link-button",
                    title: exactMoney(micros / 1e6),
                    "aria-label": `${exactMoney(micros / 1e6)}, ${m.model} on ${longDay(day)}: open requests`,
                    onclick: () => this.openLog({ date: day, model: m.model, provider: m.provider, keyId: null }),
                  },
                  money(micros / 1e6),
                ),
              );
            }),
            h("td", { className: "num" }, money(totalMicros / 1e6)),
          );
        }),
      ),
    );
  }
}
