from datetime import date
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import AnomalyKind


class Anomalies(BaseModel):
    anomalies: list["AnomaliesAnomalies"]


class AnomaliesAnomalies(BaseModel):
    kind: AnomalyKind
    key_id: Optional[str] = Field(alias="keyId")
    agent_id: Optional[str] = Field(alias="agentId")
    date: date
    severity: float
    message: str
    suggested_action: str = Field(alias="suggestedAction")


Anomalies.model_rebuild()
