from datetime import date
from typing import Optional

from pydantic import Field

from .base_model import BaseModel


class CreateAlertEndpointInput(BaseModel):
    """A new alert endpoint."""

    account_id: str = Field(alias="accountId")
    url: str
    "http(s) URL; https only in production."
    description: str = ""
    "What it is for."


class CreateVirtualKeyInput(BaseModel):
    """A new virtual key."""

    account_id: str = Field(alias="accountId")
    "The account the key spends for."
    name: str
    "A name to recognise the key by, e.g. prod."
    provider: Optional[str] = None
    "Only this provider's models (e.g. openai); null for any."
    agent_id: Optional[str] = Field(alias="agentId", default=None)
    "The agent the key is for, if any."
    spend_cap_cents: Optional[float] = Field(alias="spendCapCents", default=None)
    "Monthly spend cap in cents; null for none."


class UpdateAlertEndpointInput(BaseModel):
    """Changes to an alert endpoint; null leaves a field as it is."""

    id: str
    url: Optional[str] = None
    description: Optional[str] = None
    enabled: Optional[bool] = None


class UsageFilter(BaseModel):
    """What to count. Without month or from/to: the current UTC month. model, provider and keyId(s) narrow the LLM axis only, voiceModel the voice axis only, agentId all three."""

    month: Optional[str] = None
    "A UTC month, YYYY-MM."
    from_: Optional[date] = Field(alias="from", default=None)
    "First day of a range (inclusive), with to."
    to: Optional[date] = None
    "Last day of a range (inclusive), with from."
    account_id: Optional[str] = Field(alias="accountId", default=None)
    "The account; default: the active organisation's, else the personal one."
    agent_id: Optional[str] = Field(alias="agentId", default=None)
    "Only this agent (all three axes)."
    key_id: Optional[str] = Field(alias="keyId", default=None)
    "Only this virtual key (LLM axis)."
    key_ids: Optional[list[str]] = Field(alias="keyIds", default=None)
    "Only these virtual keys (LLM axis); keyId is added to them."
    provider: Optional[str] = None
    "Only this provider (LLM axis)."
    model: Optional[str] = None
    "Only this model (LLM axis)."
    voice_model: Optional[str] = Field(alias="voiceModel", default=None)
    "Only this voice model (voice axis)."
    admin: Optional[bool] = False
    "Platform-wide (platform admins only; others are refused)."
