from pydantic import Field

from .base_model import BaseModel
from .enums import UsageAxis


class Invoice(BaseModel):
    invoice: "InvoiceInvoice"


class InvoiceInvoice(BaseModel):
    month: str
    total_cents: int = Field(alias="totalCents")
    lines: list["InvoiceInvoiceLines"]


class InvoiceInvoiceLines(BaseModel):
    axis: UsageAxis
    continuous_cents: float = Field(alias="continuousCents")
    amount_cents: int = Field(alias="amountCents")


Invoice.model_rebuild()
InvoiceInvoice.model_rebuild()
