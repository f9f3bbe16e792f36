"""`Invoice`, `InvoiceLine` and `UsageAxis` (CONTRACTS.md §3.1)."""

from __future__ import annotations

import strawberry

from crabglamp.money import micros_to_cents
from crabglamp.usage import invoice as core

UsageAxis = strawberry.enum(
    core.UsageAxis,
    name="UsageAxis",
    description="The three things a customer pays for.",
)


@strawberry.type(name="InvoiceLine", description="One axis of the invoice.")
class InvoiceLineType:
    line: strawberry.Private[core.InvoiceLine]

    @strawberry.field(description="What the line charges for.")
    def axis(self) -> UsageAxis:  # type: ignore[valid-type]
        return self.line.axis

    @strawberry.field(description="The continuous total of the axis (what usage shows).")
    def continuous_cents(self) -> float:
        return micros_to_cents(self.line.continuous_micros)

    @strawberry.field(description="The continuous total rounded half-up to whole cents.")
    def amount_cents(self) -> int:
        return self.line.amount_cents


@strawberry.type(
    name="Invoice",
    description="A month's invoice: each axis's continuous total rounded half-up to whole "
    "cents; the total is the sum of the rounded lines.",
)
class InvoiceType:
    invoice: strawberry.Private[core.Invoice]

    @strawberry.field(description="The UTC month, YYYY-MM.")
    def month(self) -> str:
        return self.invoice.month

    @strawberry.field(description="Compute, LLM and voice, in that order.")
    def lines(self) -> list[InvoiceLineType]:
        return [InvoiceLineType(line=line) for line in self.invoice.lines]

    @strawberry.field(description="The amount due: the sum of the lines' amounts, in cents.")
    def total_cents(self) -> int:
        return self.invoice.total_cents
