from datetime import date
from typing import Optional

from pydantic import Field

from .base_model import BaseModel


class Usage(BaseModel):
    usage: "UsageUsage"


class UsageUsage(BaseModel):
    from_: date = Field(alias="from")
    to: date
    compute: "UsageUsageCompute"
    llm: "UsageUsageLlm"
    voice: "UsageUsageVoice"


class UsageUsageCompute(BaseModel):
    total_cents: float = Field(alias="totalCents")
    daily: list["UsageUsageComputeDaily"]
    agents: list["UsageUsageComputeAgents"]


class UsageUsageComputeDaily(BaseModel):
    date: date
    total_cents: float = Field(alias="totalCents")
    agent_cents: float = Field(alias="agentCents")
    plain_vm_cents: float = Field(alias="plainVmCents")


class UsageUsageComputeAgents(BaseModel):
    agent_id: Optional[str] = Field(alias="agentId")
    agent_name: Optional[str] = Field(alias="agentName")
    running_hours: float = Field(alias="runningHours")
    paused_hours: float = Field(alias="pausedHours")
    total_cents: float = Field(alias="totalCents")


class UsageUsageLlm(BaseModel):
    total_cents: float = Field(alias="totalCents")
    request_count: int = Field(alias="requestCount")
    daily: list["UsageUsageLlmDaily"]
    keys: list["UsageUsageLlmKeys"]


class UsageUsageLlmDaily(BaseModel):
    date: date
    total_cents: float = Field(alias="totalCents")
    models: list["UsageUsageLlmDailyModels"]


class UsageUsageLlmDailyModels(BaseModel):
    model: str
    provider: str
    total_cents: float = Field(alias="totalCents")
    request_count: int = Field(alias="requestCount")


class UsageUsageLlmKeys(BaseModel):
    key_id: str = Field(alias="keyId")
    key_name: str = Field(alias="keyName")
    spend_cap_cents: Optional[float] = Field(alias="spendCapCents")
    total_cents: float = Field(alias="totalCents")
    request_count: int = Field(alias="requestCount")


class UsageUsageVoice(BaseModel):
    total_cents: float = Field(alias="totalCents")
    total_characters: int = Field(alias="totalCharacters")
    models: list["UsageUsageVoiceModels"]


class UsageUsageVoiceModels(BaseModel):
    voice_model: str = Field(alias="voiceModel")
    total_cents: float = Field(alias="totalCents")
    characters: int


Usage.model_rebuild()
UsageUsage.model_rebuild()
UsageUsageCompute.model_rebuild()
UsageUsageLlm.model_rebuild()
UsageUsageLlmDaily.model_rebuild()
UsageUsageVoice.model_rebuild()
