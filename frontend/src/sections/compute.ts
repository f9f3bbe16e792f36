// Compute: agent VMs running and paused, and plain VMs, per day; then who it was.

import { execute } from "../api";
import { StackedDailyChart, type Series } from "../charts";
import { h, replace } from "../dom";
import { exactMoney, hours, money, toMicros } from "../format";
import { ComputeChartDocument, type ComputeChartQuery } from "../generated/graphql";
import type { Scope } from "../scope";
import { empty, section, setState } from "../ui";
import { LoadedSection } from "./lifecycle";

export type ComputeData = ComputeChartQuery["usage"]["compute"] & { days: string[] };

export const COMPUTE_SERIES = [
  { label: "Agents running", color: "#4f46e5" },
  { label: "Agents paused", color: "#a5b4fc" },
  { label: "Plain VMs", color: "#f59e0b" },
] as const;

/** Per day: [running, paused, plain VMs] in micro-cents. */
export function computeDaily(data: ComputeData): number[][] {
  const byDate = new Map(data.daily.map((d) => [d.date, d]));
  return data.days.map((day) => {
    const d = byDate.get(day);
    if (!d) return [0, 0, 0];
    const running = d.agents.reduce((sum, a) => sum + toMicros(a.runningCents), 0);
    const paused = d.agents.reduce((sum, a) => sum + toMicros(a.pausedCents), 0);
    return [running, paused, toMicros(d.plainVmCents)];
  });
}

export class ComputeSection extends LoadedSection<ComputeData> {
  private readonly canvas = h("canvas", { role: "img", "aria-label": "Daily compute spend" });
  private readonly chartBox = h("div", { className: "chart-box" }, this.canvas);
  private readonly chart = new StackedDailyChart("compute", this.canvas, null);

  constructor() {
    super(section("compute", "Compute", "Agent VMs (running and paused) and plain VMs, per UTC day."), { label: "Loading compute", lines: 4, tall: true });
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<ComputeData> {
    const answer = await execute(ComputeChartDocument, { filter: scope.base }, signal);
    return { ...answer.usage.compute, days: scope.period.days };
  }

  protected override cleared(): void {
    this.chart.destroy();
  }

  protected override render(data: ComputeData): void {
    if (toMicros(data.totalCents) === 0 && data.agents.length === 0 && data.plainVms.length === 0) {
      this.chart.destroy();
      setState(this.el, "empty");
      replace(this.body, empty("No compute in this period", "Agent and plain-VM hours appear here as they accrue."));
      return;
    }
    setState(this.el, "ready");
    const daily = computeDaily(data);
    const series: Series[] = COMPUTE_SERIES.map((s, i) => ({
      label: s.label,
      color: s.color,
      values: daily.map((d) => (d[i] ?? 0) / 1e6),
    }));
    this.canvas.setAttribute("aria-label", `Daily compute spend: ${money(data.totalCents)} in the period, split into agents running, agents paused and plain VMs.`);
    const headline = h("p", { className: "headline" }, h("strong", { className: "figure", "data-cents": data.totalCents }, money(data.totalCents)), " of compute");
    const agents = data.agents.length
      ? h(
          "table",
          { className: "data-table compact" },
          h("caption", null, "Agents"),
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Agent"), h("th", { scope: "col", className: "num" }, "Running"), h("th", { scope: "col", className: "num" }, "Paused"), h("th", { scope: "col", className: "num" }, "Cost"))),
          h(
            "tbody",
            null,
            data.agents.map((a) =>
              h(
                "tr",
                null,
                h("th", { scope: "row" }, a.agentName ?? (a.agentId ? a.agentId.slice(0, 8) : "No agent")),
                h("td", { className: "num" }, hours(a.runningHours)),
                h("td", { className: "num" }, hours(a.pausedHours)),
                h("td", { className: "num", title: exactMoney(a.totalCents) }, money(a.totalCents)),
              ),
            ),
          ),
        )
      : null;
    const vms = data.plainVms.length
      ? h(
          "table",
          { className: "data-table compact" },
          h("caption", null, "Plain VMs"),
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "VM"), h("th", { scope: "col", className: "num" }, "Hours"), h("th", { scope: "col", className: "num" }, "Cost"))),
          h(
            "tbody",
            null,
            data.plainVms.map((v) =>
              h(
                "tr",
                null,
                h("th", { scope: "row" }, v.plainVmName ?? v.plainVmId.slice(0, 8)),
                h("td", { className: "num" }, hours(v.hours)),
                h("td", { className: "num", title: exactMoney(v.costCents) }, money(v.costCents)),
              ),
            ),
          ),
        )
      : null;
    replace(
      this.body,
      headline,
      this.chartBox,
      h("div", { className: "breakdown" }, agents ? h("div", { className: "table-scroll" }, agents) : null, vms ? h("div", { className: "table-scroll" }, vms) : null),
    );
    this.chart.update(data.days, series);
  }
}
