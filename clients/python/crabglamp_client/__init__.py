from .anomalies import Anomalies, AnomaliesAnomalies
from .async_base_client import AsyncBaseClient
from .base_model import BaseModel, Upload
from .client import CrabGlampClient
from .enums import AlertDeliveryStatus, AnomalyKind, UsageAxis
from .exceptions import (
    GraphQLClientError,
    GraphQLClientGraphQLError,
    GraphQLClientGraphQLMultiError,
    GraphQLClientHttpError,
    GraphQLClientInvalidResponseError,
)
from .input_types import (
    CreateAlertEndpointInput,
    CreateVirtualKeyInput,
    UpdateAlertEndpointInput,
    UsageFilter,
)
from .invoice import Invoice, InvoiceInvoice, InvoiceInvoiceLines
from .requests import (
    Requests,
    RequestsRequests,
    RequestsRequestsEdges,
    RequestsRequestsEdgesNode,
    RequestsRequestsPageInfo,
)
from .usage import (
    Usage,
    UsageUsage,
    UsageUsageCompute,
    UsageUsageComputeAgents,
    UsageUsageComputeDaily,
    UsageUsageLlm,
    UsageUsageLlmDaily,
    UsageUsageLlmDailyModels,
    UsageUsageLlmKeys,
    UsageUsageVoice,
    UsageUsageVoiceModels,
)
from .virtual_keys import VirtualKeys, VirtualKeysVirtualKeys

__all__ = [
    "AlertDeliveryStatus",
    "Anomalies",
    "AnomaliesAnomalies",
    "AnomalyKind",
    "AsyncBaseClient",
    "BaseModel",
    "CrabGlampClient",
    "CreateAlertEndpointInput",
    "CreateVirtualKeyInput",
    "GraphQLClientError",
    "GraphQLClientGraphQLError",
    "GraphQLClientGraphQLMultiError",
    "GraphQLClientHttpError",
    "GraphQLClientInvalidResponseError",
    "Invoice",
    "InvoiceInvoice",
    "InvoiceInvoiceLines",
    "Requests",
    "RequestsRequests",
    "RequestsRequestsEdges",
    "RequestsRequestsEdgesNode",
    "RequestsRequestsPageInfo",
    "UpdateAlertEndpointInput",
    "Upload",
    "Usage",
    "UsageAxis",
    "UsageFilter",
    "UsageUsage",
    "UsageUsageCompute",
    "UsageUsageComputeAgents",
    "UsageUsageComputeDaily",
    "UsageUsageLlm",
    "UsageUsageLlmDaily",
    "UsageUsageLlmDailyModels",
    "UsageUsageLlmKeys",
    "UsageUsageVoice",
    "UsageUsageVoiceModels",
    "VirtualKeys",
    "VirtualKeysVirtualKeys",
]
