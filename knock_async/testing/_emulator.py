"""``KnockEmulator``: the front door. Owns the state, serves it over aiohttp on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web
from yarl import URL

from .._models import ArchivedFilter, BulkOperation, DeliveryStatus
from ._app import AppState, create_app
from ._bulk_store import RecordStore
from ._bulk_views import RecordViews
from ._clock import Clock, FastClock, ManualClock, SystemClock
from ._faults import Faults
from ._hints import StandingStill
from ._log import EmulatorStats, RecordedRequest, RequestLog
from ._operations import OperationEngine, ProcessingSettings
from ._ratelimit import EmulatorRateLimits, RateLimiter
from ._seed import generate_messages
from ._store import Channel, ChannelType, Message, MessageStore
from ._validation import parse_channel_id
from ._wire import KnockHTTPError, render_operation

if TYPE_CHECKING:
    from .. import KnockClient

__all__ = ["KnockEmulator"]

DEFAULT_API_KEY = "sk_test_knock_emulator"


def _known(enum_type: type[DeliveryStatus], name: str, value: object) -> DeliveryStatus:
    member = enum_type(value) if isinstance(value, str) else None
    if member is None or not member.is_known:
        allowed = ", ".join(m.value for m in enum_type)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return member


def _channel_type(value: ChannelType | str) -> ChannelType:
    try:
        return ChannelType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in ChannelType)
        raise ValueError(f"type must be one of {allowed}; got {value!r}") from None


def _check_origin(origin: str | None) -> str | None:
    if origin is None or origin == "":
        return origin
    url = URL(origin)
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        raise ValueError(f"progress_origin must be None, '' or an http(s) origin, got {origin!r}")
    return str(url.origin())


class KnockEmulator(RecordViews):
    """An emulated Knock API (its eleven bulk endpoints and bulk operations) on loopback.

    ``async with KnockEmulator() as emu:`` serves on an ephemeral port at ``emu.base_url``;
    ``emu.make_app()`` gives an ``aiohttp`` application for ``aiohttp_server`` instead.

    Answers Knock documents, followed exactly: 401 ``api_key_missing`` ("No valid API key
    provided") for a missing, malformed or unknown key; 401 ``incorrect_token_type`` for a
    public ``pk_`` key; 422 ``invalid_params`` with an ``errors`` list of
    ``{"field", "message", "type": null}``; 404 ``{"errors": {"detail": "404 Not Found"}}`` for
    an unrouted path; rate limits per environment (every key shares them); a relative
    ``progress_path``; operation names ``messages.<action>`` and Knock's names for the other
    ten (``users.identify``, ``objects.<collection>.set``, ...; their ``error_items`` rules are
    listed in ``_bulk_endpoints``; read their records with ``users()``, ``objects()``,
    ``subscriptions()``, ``tenants()``, ``preferences()``, ``schedules()``);
    ``processed_rows`` = success + error; timestamps with microseconds. Inferred, as Knock
    documents no body for them: 404 ``resource_missing`` for an unknown channel or operation,
    and the 400, 413, 414, 429 and 5xx bodies (the same four keys: ``code``, ``message``,
    ``status``, ``type``).

    Settings (all keyword-only):

    - ``api_keys``: the accepted keys; ``None`` (default) accepts any ``sk_...`` key. Public
      ``pk_...`` keys are refused with 401 ``incorrect_token_type`` either way.
    - ``strict``: refuse a body with an unknown top-level field with 422 (default: accept and
      ignore it, as the spec allows, naming it on the request log's ``ignored_fields``).
    - ``clock``: a ``SystemClock`` (default), a ``FastClock``, or a ``ManualClock`` the test
      moves. On the first two, operations are processed between requests in slices of 1,000
      rows (no request waits for more than one slice); on any other clock every request and
      every read brings them up to date first, exactly.
    - ``rows_per_second``, ``batch_size``, ``queue_delay``: processing speed (an operation is
      ``queued`` for ``queue_delay`` seconds, then processed batch by batch).
    - ``rate_limits``: ``True`` (Knock's tiers: POST 5/s, GET 200/s), ``False`` (off) or an
      ``EmulatorRateLimits``. The emulator is one Knock environment: all its keys share them.
    - ``workflows``: the workflow keys a schedule may name (default ``None``: any).
    - ``retention``: the retention window for non-in-app channels (``None``: unlimited).
    - ``estimate_jitter``: perturb ``estimated_total_rows`` by up to this fraction.
    - ``default_archived``: the ``archived`` filter applied when a body leaves it out.
    - ``max_list_items``: the longest ``recipient_ids``/``tenants``/``workflows`` list accepted.
    - ``progress_origin``: ``""`` (default) makes ``progress_path`` relative
      (``/v1/bulk_operations/<id>``), as in every answer Knock documents; ``None`` makes it
      absolute on the origin the request came to; an origin such as
      ``"https://api.example.com"`` puts it on another host, as in the spec's example.
    - ``host``, ``port``: where to listen (default: ``127.0.0.1``, an ephemeral port).
    - ``seed``: seeds the estimate jitter.
    - ``request_log_size``: how many requests ``requests`` keeps (the latest; ``None``: no
      count limit); ``request_log_bytes``: at most about this many bytes for them (default
      16 MiB; ``None``: no limit). Each entry keeps the first 4 KiB of its body, so the log
      stays bounded whatever clients send.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        strict: bool = False,
        clock: Clock | None = None,
        rows_per_second: float = 10_000.0,
        batch_size: int = 500,
        queue_delay: float = 0.05,
        rate_limits: bool | EmulatorRateLimits = True,
        retention: timedelta | None = timedelta(days=30),
        estimate_jitter: float = 0.0,
        default_archived: ArchivedFilter | str = ArchivedFilter.INCLUDE,
        max_list_items: int = 1000,
        progress_origin: str | None = "",
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        request_log_size: int | None = 10_000,
        request_log_bytes: int | None = 16 * 1024 * 1024,
        workflows: Iterable[str] | None = None,
    ) -> None:
        if isinstance(workflows, str):
            raise TypeError("workflows must be a list of workflow keys, not a str")
        self._records = RecordStore(workflows=workflows)
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be a list of keys, not a str")
        if isinstance(max_list_items, bool) or not isinstance(max_list_items, int):
            raise TypeError("max_list_items must be an int")
        if max_list_items < 1:
            raise ValueError(f"max_list_items must be >= 1, got {max_list_items}")
        archived = ArchivedFilter(default_archived)
        if not archived.is_known:
            raise ValueError(f"default_archived must be include, exclude or only; got {archived!r}")
        self.clock: Clock = SystemClock() if clock is None else clock
        self.settings = ProcessingSettings(
            rows_per_second=rows_per_second,
            batch_size=batch_size,
            queue_delay=queue_delay,
            retention=retention,
            estimate_jitter=estimate_jitter,
            default_archived=archived,
        )
        if rate_limits is True:
            limits: EmulatorRateLimits | None = EmulatorRateLimits()
        elif rate_limits is False:
            limits = None
        else:
            limits = rate_limits
        self.faults = Faults()
        self.stats = EmulatorStats()
        self._store = MessageStore()
        self._engine = OperationEngine(
            self._store,
            self.clock,
            self.settings,
            message_fails=self.faults.message_fails,
            seed=seed,
            render=render_operation,
        )
        if request_log_size is not None and request_log_size < 0:
            raise ValueError(f"request_log_size must be >= 0 or None, got {request_log_size}")
        if request_log_bytes is not None and request_log_bytes < 0:
            raise ValueError(f"request_log_bytes must be >= 0 or None, got {request_log_bytes}")
        self._log = RequestLog(max_entries=request_log_size, max_bytes=request_log_bytes)
        self._state = AppState(
            store=self._store,
            engine=self._engine,
            faults=self.faults,
            clock=self.clock,
            limiter=None if limits is None else RateLimiter(limits),
            # Real (or sped-up real) time moves by itself: process between requests, in
            # slices. Any other clock (a ManualClock, a test's own) is read lazily, exactly.
            background=isinstance(self.clock, SystemClock | FastClock),
            standing_still=StandingStill() if isinstance(self.clock, ManualClock) else None,
            api_keys=None if api_keys is None else frozenset(api_keys),
            max_list_items=max_list_items,
            strict=bool(strict),
            progress_origin=_check_origin(progress_origin),
            stats=self.stats,
            log=self._log,
            records=self._records,
        )
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # Serving -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """A new ``aiohttp`` application over this emulator's state, e.g. for
        ``aiohttp_server``; it shares the store, faults and log with the emulator."""
        return create_app(self._state)

    async def start(self) -> None:
        """Listen on ``host``:``port``; ``base_url`` is set once this returns."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = str(URL.build(scheme="http", host=host, port=port))

    async def close(self) -> None:
        """Stop listening and close open connections. The state stays readable."""
        runner, self._runner = self._runner, None
        self._base_url = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def client(self, *, api_key: str | None = None, **options: Any) -> KnockClient:
        """A ``KnockClient`` for this emulator, on its clock: ``async with emu.client() as
        knock:``. The client paces, backs off and polls in the emulator's time, so with a
        ``ManualClock`` (whose ``sleep`` moves it forward) or a ``FastClock`` the app under
        test waits no real time, without threading ``clock=``/``sleep=`` through it by hand.

        ``api_key`` defaults to the first ``sk_`` key of ``api_keys`` (or any ``sk_`` key);
        ``options`` are ``KnockClient``'s (``retry=``, ``poll=``, ``rate_limits=``, ...).
        Pass the client, or this method as a factory, to the code under test.
        """
        from .. import KnockClient

        if api_key is None:
            keys = sorted(k for k in self._state.api_keys or () if k.startswith("sk_"))
            api_key = keys[0] if keys else DEFAULT_API_KEY
        if callable(getattr(self.clock, "sleep", None)) and "sleep" not in options:
            options.setdefault("clock", self.clock)  # a Clock: monotonic() and sleep()
        else:
            options.setdefault("clock", self.clock.monotonic)
        return KnockClient(api_key=api_key, base_url=self.base_url, **options)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: what to give a client as its base URL."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not running: use `async with KnockEmulator()`")
        return self._base_url

    # Seeding and reading the store ---------------------------------------------------------

    def add_channel(
        self, type: ChannelType | str = ChannelType.IN_APP_FEED, *, channel_id: str | None = None
    ) -> str:
        """Add a channel of ``type`` (``in_app_feed``, ``email``, ``sms``, ``push`` or ``chat``)
        and return its id: ``channel_id`` if given (a UUID, else ``ValueError``), else a new one.
        """
        kind = _channel_type(type)
        if channel_id is None:
            channel_id = str(uuid.uuid4())
        else:
            try:
                channel_id = parse_channel_id(channel_id)
            except KnockHTTPError:
                raise ValueError(f"channel_id must be a UUID, got {channel_id!r}") from None
        self._store.add_channel(channel_id, kind)
        return channel_id

    def channels(self) -> list[Channel]:
        """Every channel, in the order they were added."""
        return self._store.channels

    def add_messages(self, channel_id: str, count: int, *, seed: int = 0) -> list[Message]:
        """Add ``count`` realistic random messages to ``channel_id``, inserted over the last 60
        days, and return them.

        The same ``seed`` and clock time give the same messages (ids aside, which are unique).
        """
        self._engine.advance()
        channel = self._store.channel(channel_id)
        messages = generate_messages(
            channel,
            count,
            seed=seed,
            now=self.clock.now(),
            new_id=lambda: self._store.next_message_id(channel.id),
        )
        for message in messages:
            self._store.add(message)
        return messages

    def add_message(
        self,
        channel_id: str,
        *,
        recipient_id: str = "user_1",
        workflow: str = "new-comment",
        tenant: str | None = None,
        delivery_status: DeliveryStatus | str = DeliveryStatus.DELIVERED,
        inserted_at: datetime | None = None,
        data: Mapping[str, Any] | None = None,
        seen_at: datetime | None = None,
        read_at: datetime | None = None,
        archived_at: datetime | None = None,
        interacted_at: datetime | None = None,
        link_clicked_at: datetime | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Add one message to ``channel_id`` exactly as described and return it.

        ``recipient_id``, ``workflow``, ``tenant``, ``delivery_status`` and ``data`` (the
        trigger data) are what the filters match; ``inserted_at`` defaults to now; ``seen_at``,
        ``read_at``, ``archived_at``, ``interacted_at`` and ``link_clicked_at`` set its
        engagement; ``message_id`` defaults to a fresh id. ``KeyError`` for an unknown channel.
        """
        self._engine.advance()
        channel = self._store.channel(channel_id)
        message = Message(
            id=self._store.next_message_id(channel.id) if message_id is None else message_id,
            channel_id=channel.id,
            channel_type=channel.type,
            recipient_id=recipient_id,
            workflow=workflow,
            tenant=tenant,
            delivery_status=_known(DeliveryStatus, "delivery_status", delivery_status),
            inserted_at=self.clock.now() if inserted_at is None else inserted_at,
            data=data,
            seen_at=seen_at,
            read_at=read_at,
            archived_at=archived_at,
            interacted_at=interacted_at,
            link_clicked_at=link_clicked_at,
        )
        return self._store.add(message)

    def messages(self, channel_id: str) -> list[Message]:
        """The messages of ``channel_id`` now (operations brought up to date first)."""
        self._engine.advance()
        return self._store.messages(channel_id)

    def message(self, message_id: str) -> Message | None:
        """The message ``message_id`` now, or ``None`` if there is none (or it was deleted)."""
        self._engine.advance()
        return self._store.get(message_id)

    # Operations ----------------------------------------------------------------------------

    def operation(self, operation_id: str) -> BulkOperation:
        """The bulk operation ``operation_id`` as it stands now; ``KeyError`` if unknown."""
        self._engine.advance()
        operation = self._engine.get(operation_id)
        if operation is None:
            raise KeyError(operation_id)
        return operation

    def operations(self) -> list[BulkOperation]:
        """Every bulk operation, oldest first, as it stands now."""
        self._engine.advance()
        return self._engine.operations()

    # Time ----------------------------------------------------------------------------------

    def _manual_clock(self) -> ManualClock:
        if not isinstance(self.clock, ManualClock):
            raise TypeError("this needs KnockEmulator(clock=ManualClock())")
        return self.clock

    def advance(self, seconds: float) -> None:
        """Move the ``ManualClock`` forward ``seconds`` and bring every operation up to date."""
        self._manual_clock().advance(seconds)
        self._engine.advance()

    def settle(self, *, max_seconds: float = 86_400.0) -> float:
        """Move the ``ManualClock`` forward until no operation can progress any more (stuck
        ones aside); returns the seconds it moved. ``RuntimeError`` past ``max_seconds``."""
        clock = self._manual_clock()
        moved = 0.0
        while (due := self._engine.next_event_time()) is not None:
            step = max(0.0, due - clock.monotonic())
            if moved + step > max_seconds:
                raise RuntimeError(f"operations still running after {max_seconds} s")
            clock.advance(step)
            moved += step
            self._engine.advance(max(due, clock.monotonic()))
        return moved

    # What happened -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far (the latest ``request_log_size``), oldest first."""
        return list(self._log)

    def clear_requests(self) -> None:
        """Forget the request log (counters in ``stats`` are kept)."""
        self._log.clear()

    def __repr__(self) -> str:
        where = self._base_url if self._runner is not None else "not running"
        return f"<KnockEmulator {where}>"
