"""knock_async: asyncio-native client for Knock's channel bulk message-status API.

Start a bulk update with ``knock.channels.bulk.update_message_status(...)`` and follow the
bulk operation it returns with ``knock.bulk_operations.poll(...)``.
"""

from typing import TYPE_CHECKING, Any

from ._client import KnockClient
from ._defaults import USE_CLIENT_DEFAULT, Clock, UseClientDefault
from ._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BulkOperationFailedError,
    ClientClosedError,
    InternalServerError,
    KnockError,
    NotFoundError,
    PermissionDeniedError,
    PollTimeoutError,
    RateLimitError,
    RateLimiterTimeoutError,
    ResponseTooLargeError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from ._fanout import (
    ChannelResult,
    FanOut,
    FanOutEvent,
    FanOutEventKind,
    FanOutSummary,
    FanOutTotals,
    Outcome,
)
from ._follow import PollPolicy
from ._handle import BulkOperationHandle
from ._hooks import (
    FollowStopped,
    Hook,
    HookEvent,
    PollErrorRiddenOut,
    PollObserved,
    RateLimitWait,
    RequestAnswered,
    RequestSent,
    RetryScheduled,
)
from ._models import (
    ArchivedFilter,
    ArchivedFilterValue,
    BulkAction,
    BulkActionValue,
    BulkFilters,
    BulkOperation,
    BulkOperationStatus,
    BulkUpdateMessagesForChannelRequest,
    DeliveryStatus,
    DeliveryStatusValue,
    EngagementStatus,
    EngagementStatusValue,
    ErrorItem,
)
from ._poller import Poller
from ._progress import Progress
from ._ratelimit import AdaptiveRateLimiter, RateLimiter, RateLimits, Tier
from ._retry import Failure, RetryPolicy
from ._version import __version__

if TYPE_CHECKING:
    from ._items import ObjectRecord, ScheduleRecord, SubscriptionRecord, TenantRecord, UserRecord

# Loaded on first use, as the endpoints they serve: `import knock_async` stays as cheap.
_LAZY = frozenset(
    {"UserRecord", "ObjectRecord", "TenantRecord", "SubscriptionRecord", "ScheduleRecord"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _items

        return getattr(_items, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "__version__",
    # the client
    "KnockClient",
    "USE_CLIENT_DEFAULT",
    "UseClientDefault",
    "Clock",
    "Poller",
    "PollPolicy",
    "RetryPolicy",
    "Progress",
    "BulkOperationHandle",
    # fan-out over many channels
    "FanOut",
    "FanOutEvent",
    "FanOutEventKind",
    "FanOutTotals",
    "FanOutSummary",
    "ChannelResult",
    "Outcome",
    # pacing
    "RateLimits",
    "RateLimiter",
    "AdaptiveRateLimiter",
    "Tier",
    # instrumentation
    "Hook",
    "HookEvent",
    "RequestSent",
    "RequestAnswered",
    "RetryScheduled",
    "RateLimitWait",
    "PollErrorRiddenOut",
    "FollowStopped",
    "PollObserved",
    # models
    "ArchivedFilter",
    "BulkAction",
    "BulkFilters",
    "BulkOperation",
    "BulkOperationStatus",
    "BulkUpdateMessagesForChannelRequest",
    "DeliveryStatus",
    "EngagementStatus",
    "ErrorItem",
    # Items of the users, objects, tenants and schedules bulk endpoints.
    "UserRecord",
    "ObjectRecord",
    "TenantRecord",
    "SubscriptionRecord",
    "ScheduleRecord",
    # the string values a type checker accepts besides the enums
    "BulkActionValue",
    "ArchivedFilterValue",
    "DeliveryStatusValue",
    "EngagementStatusValue",
    # errors
    "KnockError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "RateLimiterTimeoutError",
    "Failure",
    "APIResponseValidationError",
    "ResponseValidationError",
    "ResponseTooLargeError",
    "ClientClosedError",
    "BulkOperationFailedError",
    "PollTimeoutError",
]
