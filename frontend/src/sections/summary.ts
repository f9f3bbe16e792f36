// The period at a glance: everything, then each axis.

import { h, replace } from "../dom";
import { count, exactMoney, money, sumCents } from "../format";
import type { Scope } from "../scope";

export interface Totals {
  llm: { cents: number; requests: number } | null;
  compute: { cents: number } | null;
  voice: { cents: number; characters: number } | null;
}

export class SummarySection {
  readonly el = h("section", { className: "summary", "aria-label": "Totals for the period" });

  render(totals: Totals, scope: Scope): void {
    const filtered = scope.state.providers.length > 0 || scope.state.keyIds.length > 0;
    const known = [totals.llm, totals.compute, totals.voice].every((t) => t !== null);
    const total = known ? sumCents([totals.llm?.cents ?? 0, totals.compute?.cents ?? 0, totals.voice?.cents ?? 0]) : null;
    const tile = (id: string, label: string, cents: number | null, note: string | null) =>
      h(
        "div",
        { className: `stat stat-${id}`, "data-stat": id },
        h("p", { className: "stat-label" }, label),
        h(
          "p",
          { className: "stat-value figure", "data-cents": cents ?? "", title: cents === null ? null : exactMoney(cents) },
          cents === null ? "—" : money(cents),
        ),
        h("p", { className: "stat-note" }, note ?? "\u00a0"),
      );
    replace(
      this.el,
      tile("total", filtered ? "Total (LLM filtered)" : "Total spend", total, "compute + LLM + voice"),
      tile("llm", filtered ? "LLM (filtered)" : "LLM", totals.llm?.cents ?? null, totals.llm ? `${count(totals.llm.requests)} requests` : null),
      tile("compute", "Compute", totals.compute?.cents ?? null, "agents and plain VMs"),
      tile("voice", "Voice", totals.voice?.cents ?? null, totals.voice ? `${count(totals.voice.characters)} characters` : null),
    );
  }
}
