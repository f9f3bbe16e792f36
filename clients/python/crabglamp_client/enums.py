from enum import Enum


class AlertDeliveryStatus(str, Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class AnomalyKind(str, Enum):
    SPIKE_ON_QUIET_KEY = "SPIKE_ON_QUIET_KEY"
    CAP_TRAJECTORY = "CAP_TRAJECTORY"
    RUNAWAY_DAY = "RUNAWAY_DAY"


class UsageAxis(str, Enum):
    COMPUTE = "COMPUTE"
    LLM = "LLM"
    VOICE = "VOICE"
