// The month's invoice as billing will issue it: each line rounded half-up to whole cents.

import { execute } from "../api";
import { h, replace } from "../dom";
import { exactMoney, monthName } from "../format";
import { InvoicePreviewDocument, type InvoicePreviewQuery } from "../generated/graphql";
import type { Scope } from "../scope";
import { today } from "../state";
import { section, setState } from "../ui";
import { LoadedSection } from "./lifecycle";

export type Invoice = InvoicePreviewQuery["invoice"];

const AXIS_LABELS = { COMPUTE: "Compute", LLM: "LLM requests", VOICE: "Voice" } as const;

const wholeCents = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

export class InvoiceSection extends LoadedSection<Invoice> {
  private readonly title: HTMLElement;

  constructor() {
    super(section("invoice", "Invoice preview", "Lines rounded half-up to whole cents; the total is their sum."), { label: "Loading the invoice preview", lines: 4 });
    this.title = this.el.querySelector("h2") as HTMLElement;
  }

  protected override async fetch(scope: Scope, signal: AbortSignal): Promise<Invoice> {
    const answer = await execute(InvoicePreviewDocument, { accountId: scope.accountId, month: scope.invoiceMonth }, signal);
    return answer.invoice;
  }

  protected override render(invoice: Invoice): void {
    setState(this.el, "ready");
    const open = invoice.month >= today().slice(0, 7);
    this.title.textContent = `Invoice preview — ${monthName(invoice.month)}`;
    replace(
      this.body,
      h(
        "table",
        { className: "data-table invoice-table" },
        h("caption", { className: "visually-hidden" }, `Invoice for ${monthName(invoice.month)}`),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Line"), h("th", { scope: "col", className: "num" }, "Usage (exact)"), h("th", { scope: "col", className: "num" }, "Amount"))),
        h(
          "tbody",
          null,
          invoice.lines.map((line) =>
            h(
              "tr",
              { "data-axis": line.axis },
              h("th", { scope: "row" }, AXIS_LABELS[line.axis]),
              h("td", { className: "num muted" }, exactMoney(line.continuousCents)),
              h("td", { className: "num amount", "data-amount-cents": line.amountCents }, wholeCents.format(line.amountCents / 100)),
            ),
          ),
        ),
        h(
          "tfoot",
          null,
          h("tr", null, h("th", { scope: "row" }, "Total"), h("td"), h("td", { className: "num total", "data-amount-cents": invoice.totalCents }, wholeCents.format(invoice.totalCents / 100))),
        ),
      ),
      h("p", { className: "hint" }, open ? "The month is still running: this total grows until the month ends (UTC)." : "This month is closed."),
    );
  }
}
