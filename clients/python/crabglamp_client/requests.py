from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel


class Requests(BaseModel):
    requests: "RequestsRequests"


class RequestsRequests(BaseModel):
    request_count: int = Field(alias="requestCount")
    total_cents: float = Field(alias="totalCents")
    edges: list["RequestsRequestsEdges"]
    page_info: "RequestsRequestsPageInfo" = Field(alias="pageInfo")


class RequestsRequestsEdges(BaseModel):
    cursor: str
    node: "RequestsRequestsEdgesNode"


class RequestsRequestsEdgesNode(BaseModel):
    id: str
    ts: datetime
    key_id: str = Field(alias="keyId")
    key_name: Optional[str] = Field(alias="keyName")
    model: str
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")
    cost_cents: float = Field(alias="costCents")
    status: str


class RequestsRequestsPageInfo(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: Optional[str] = Field(alias="endCursor")


Requests.model_rebuild()
RequestsRequests.model_rebuild()
RequestsRequestsEdges.model_rebuild()
