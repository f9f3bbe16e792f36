from datetime import date
from typing import Any, Optional, Union

from .anomalies import Anomalies
from .async_base_client import AsyncBaseClient
from .base_model import UNSET, UnsetType
from .input_types import UsageFilter
from .invoice import Invoice
from .requests import Requests
from .usage import Usage
from .virtual_keys import VirtualKeys


def gql(q: str) -> str:
    return q


class CrabGlampClient(AsyncBaseClient):
    async def anomalies(
        self,
        account_id: Union[Optional[str], UnsetType] = UNSET,
        month: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> Anomalies:
        query = gql("""
            query Anomalies($accountId: ID, $month: String) {
              anomalies(accountId: $accountId, month: $month) {
                kind
                keyId
                agentId
                date
                severity
                message
                suggestedAction
              }
            }
            """)
        variables: dict[str, object] = {"accountId": account_id, "month": month}
        response = await self.execute(
            query=query, operation_name="Anomalies", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Anomalies.model_validate(data)

    async def invoice(
        self,
        account_id: Union[Optional[str], UnsetType] = UNSET,
        month: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> Invoice:
        query = gql("""
            query Invoice($accountId: ID, $month: String) {
              invoice(accountId: $accountId, month: $month) {
                month
                totalCents
                lines {
                  axis
                  continuousCents
                  amountCents
                }
              }
            }
            """)
        variables: dict[str, object] = {"accountId": account_id, "month": month}
        response = await self.execute(
            query=query, operation_name="Invoice", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Invoice.model_validate(data)

    async def requests(
        self,
        date: date,
        first: int,
        key_id: Union[Optional[str], UnsetType] = UNSET,
        model: Union[Optional[str], UnsetType] = UNSET,
        after: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> Requests:
        query = gql("""
            query Requests($date: Date!, $keyId: ID, $model: String, $first: Int!, $after: String) {
              requests(
                date: $date
                keyId: $keyId
                model: $model
                first: $first
                after: $after
              ) {
                requestCount
                totalCents
                edges {
                  cursor
                  node {
                    id
                    ts
                    keyId
                    keyName
                    model
                    inputTokens
                    outputTokens
                    costCents
                    status
                  }
                }
                pageInfo {
                  hasNextPage
                  endCursor
                }
              }
            }
            """)
        variables: dict[str, object] = {
            "date": date,
            "keyId": key_id,
            "model": model,
            "first": first,
            "after": after,
        }
        response = await self.execute(
            query=query, operation_name="Requests", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Requests.model_validate(data)

    async def usage(
        self, filter_: Union[Optional[UsageFilter], UnsetType] = UNSET, **kwargs: Any
    ) -> Usage:
        query = gql("""
            query Usage($filter: UsageFilter) {
              usage(filter: $filter) {
                from
                to
                compute {
                  totalCents
                  daily {
                    date
                    totalCents
                    agentCents
                    plainVmCents
                  }
                  agents {
                    agentId
                    agentName
                    runningHours
                    pausedHours
                    totalCents
                  }
                }
                llm {
                  totalCents
                  requestCount
                  daily {
                    date
                    totalCents
                    models {
                      model
                      provider
                      totalCents
                      requestCount
                    }
                  }
                  keys {
                    keyId
                    keyName
                    spendCapCents
                    totalCents
                    requestCount
                  }
                }
                voice {
                  totalCents
                  totalCharacters
                  models {
                    voiceModel
                    totalCents
                    characters
                  }
                }
              }
            }
            """)
        variables: dict[str, object] = {"filter": filter_}
        response = await self.execute(
            query=query, operation_name="Usage", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return Usage.model_validate(data)

    async def virtual_keys(
        self,
        account_id: Union[Optional[str], UnsetType] = UNSET,
        provider: Union[Optional[str], UnsetType] = UNSET,
        **kwargs: Any,
    ) -> VirtualKeys:
        query = gql("""
            query VirtualKeys($accountId: ID, $provider: String) {
              virtualKeys(accountId: $accountId, provider: $provider) {
                id
                name
                provider
                status
                spendCapCents
                accruedCents
                percentUsed
              }
            }
            """)
        variables: dict[str, object] = {"accountId": account_id, "provider": provider}
        response = await self.execute(
            query=query, operation_name="VirtualKeys", variables=variables, **kwargs
        )
        data = self.get_data(response)
        return VirtualKeys.model_validate(data)
