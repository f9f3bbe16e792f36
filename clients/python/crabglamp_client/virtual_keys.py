from typing import Optional

from pydantic import Field

from .base_model import BaseModel


class VirtualKeys(BaseModel):
    virtual_keys: list["VirtualKeysVirtualKeys"] = Field(alias="virtualKeys")


class VirtualKeysVirtualKeys(BaseModel):
    id: str
    name: str
    provider: Optional[str]
    status: str
    spend_cap_cents: Optional[float] = Field(alias="spendCapCents")
    accrued_cents: float = Field(alias="accruedCents")
    percent_used: Optional[float] = Field(alias="percentUsed")


VirtualKeys.model_rebuild()
