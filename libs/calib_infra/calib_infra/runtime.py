"""The composition root every service shares: config, logging, MongoDB, S3, NATS,
heartbeats, and a start-up that waits for its dependencies instead of crashing."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from http import HTTPStatus
from typing import TypeVar

import msgspec
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from calib_app.dead_letters import DeadLetterOffice, Received, failed, got_through, rejected
from calib_app.ports import RetryLater
from calib_core import wiring
from calib_core.deadletters import backoff_s
from calib_infra import metrics
from calib_infra.bus import BusPublisher, durable_consumer, make_broker, start_with_retry
from calib_infra.clock import Clock
from calib_infra.config import Config, load_config
from calib_infra.deliveries import received
from calib_infra.eventloop import run_bounded
from calib_infra.filecache import FileCache
from calib_infra.logs import configure_logging
from calib_infra.mongo import check_schema, mongo_client
from calib_infra.repositories import (
    CalibrationCacheRepository,
    DeadLetterRepository,
    FrameRepository,
    HeartbeatRepository,
    JobRepository,
    MaintenanceRunRepository,
    ObservatoryRepository,
    RejectionRepository,
    SettingsRepository,
)
from calib_infra.retry import until_it_works
from calib_infra.store import ObjectStore

E = TypeVar("E", bound=msgspec.Struct)

HEARTBEAT_INTERVAL_S = 5.0
#: How long a health check waits for each dependency.
LIVENESS_TIMEOUT_S = 2.0
SHUTDOWN_GRACE_S = 5.0


class Runtime:
    def __init__(self, service: str, config: Config | None = None):
        self.service = service
        self.config = config or load_config()
        refuse_unsafe_production(self.config)
        self.instance = self.config.service_instance or f"{socket.gethostname()}-{os.getpid()}"
        self.log = configure_logging(self.config, service).bind(instance=self.instance)
        self.mongo = mongo_client(self.config)
        self.db = self.mongo[self.config.mongodb_db]
        self.frames = FrameRepository(self.db)
        self.jobs = JobRepository(self.db)
        self.settings = SettingsRepository(self.db)
        self.observatories = ObservatoryRepository(self.db)
        self.rejections = RejectionRepository(self.db)
        self.heartbeats = HeartbeatRepository(self.db)
        self.cache = CalibrationCacheRepository(self.db)
        self.maintenance_runs = MaintenanceRunRepository(self.db)
        self.dead_letters = DeadLetterRepository(self.db)
        self.clock = Clock(self.config.clock_offset_file)
        self.store = ObjectStore(self.config)
        self.files = FileCache(
            self.store, self.config.file_cache_path, self.config.file_cache_mb << 20
        )
        self.broker: NatsBroker = make_broker(self.config)
        self.events = BusPublisher(self.broker)
        #: where the consumers take the messages they cannot handle (SPEC §12)
        self.dead_letter_office = DeadLetterOffice(
            letters=self.dead_letters,
            bus=self.events,
            clock=self.clock,
            log=self.log,
            max_deliveries=self.config.max_deliveries,
        )
        self.datastores_ready = asyncio.Event()
        self.bus_ready = asyncio.Event()
        self._handling: set[asyncio.Task] = set()
        #: set by :meth:`hand_back`: a message fetched from now on goes straight back
        self.stopping = False

    def now(self) -> datetime:
        """UTC now (moved by the test clock when ``CALIB_CLOCK_OFFSET_FILE`` is set)."""
        return self.clock.now()

    async def connect_datastores(self) -> None:
        """Wait until MongoDB answers with its schema in place (made by ``calib init-db``,
        never by a service) and S3 answers with the bucket created."""
        await until_it_works(lambda: check_schema(self.db), self.log, "mongodb")
        await until_it_works(self.store.ensure_bucket, self.log, "s3")
        self.datastores_ready.set()

    async def connect(self) -> None:
        await self.connect_datastores()
        await start_with_retry(self.broker, self.log, self.config)
        self.bus_ready.set()
        self.log.info("connected", nats=self.config.nats_url, mongodb_db=self.config.mongodb_db)

    async def dependencies(self) -> dict[str, str | None]:
        """Each dependency's state now: None when it answered within the deadline, else
        why not (not a start-up latch: a server that hangs later shows here)."""

        async def mongodb() -> None:
            await self.db.command("ping")

        async def nats() -> None:
            connection = self.broker.connection if self.bus_ready.is_set() else None
            if connection is None or not connection.is_connected:
                raise ConnectionError("not connected")
            await connection.flush(timeout=LIVENESS_TIMEOUT_S)

        async def answer(probe: Callable[[], Awaitable[None]]) -> str | None:
            try:
                await asyncio.wait_for(probe(), LIVENESS_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - any failure is "not answering"
                return f"{type(error).__name__}: {error}"[:200] or "no answer"
            return None

        names = ("mongodb", "s3", "nats")
        states = await asyncio.gather(answer(mongodb), answer(self.store.ping), answer(nats))
        return dict(zip(names, states, strict=True))

    async def serve_health(self, port: int) -> None:
        """A tiny HTTP endpoint for container probes: ``GET /livez`` answers while the
        process runs; ``GET /healthz`` is 200 only while every dependency answers; and
        ``GET /metrics`` for Prometheus (:mod:`calib_infra.metrics`)."""

        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readline(), LIVENESS_TIMEOUT_S)
                path = request.split()[1].decode() if len(request.split()) > 1 else ""
                if path == "/metrics":
                    status, body = 200, await self.metrics_reply()
                    content_type = metrics.CONTENT_TYPE
                else:
                    status, body = await self.health_reply(path)
                    content_type = "application/json"
                writer.write(
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            except (TimeoutError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(reply, self.config.health_host, port)
        async with server:
            await server.serve_forever()

    async def health_reply(self, path: str) -> tuple[int, bytes]:
        """Status code and JSON body of ``/livez`` or ``/healthz``."""
        if path == "/livez":
            return 200, msgspec.json.encode({"status": "alive", "service": self.service})
        if path != "/healthz":
            return 404, msgspec.json.encode({"error": "not_found", "detail": path})
        states = await self.dependencies()
        ready = all(state is None for state in states.values())
        waiting = "unavailable" if self.bus_ready.is_set() else "starting"
        body = {
            "status": "ready" if ready else waiting,
            "service": self.service,
            "checks": {name: state is None for name, state in states.items()},
            "errors": {name: state for name, state in states.items() if state is not None},
        }
        return (200 if ready else 503), msgspec.json.encode(body)

    @property
    def consumers(self) -> list[wiring.Consumer]:
        """The durable consumers this service binds."""
        return [consumer for consumer in wiring.CONSUMERS if consumer.service == self.service]

    async def metrics_reply(self) -> bytes:
        """This process's metrics, its consumers' lag read from JetStream now."""
        connection = self.broker.connection if self.bus_ready.is_set() else None
        if connection is not None and connection.is_connected:
            await metrics.observe_consumers(connection.jetstream(), self.consumers)
        return metrics.exposition()

    async def heartbeat_forever(self) -> None:
        await self.datastores_ready.wait()  # no write before the schema is known to exist
        while True:
            try:
                await self.heartbeats.beat(self.service, self.instance, self.now())
            except Exception as error:  # noqa: BLE001 - a missed beat is reported, not fatal
                self.log.warning("heartbeat failed", error=str(error))
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def consume(
        self,
        consumer: wiring.Consumer,
        event_type: type[E],
        handler: Callable[[E], Awaitable[None]],
        *,
        ack_wait_s: float | None = None,
    ) -> None:
        """Bind ``handler(event)`` to a durable consumer shared by all replicas.

        A message is acknowledged only after the handler returns (its work is durable);
        while it runs, in-progress acks keep it ours, so only a dead process lets the
        message go to another replica. One that cannot be handled is settled as SPEC
        §12 says (:mod:`calib_app.dead_letters`, in :attr:`dead_letter_office`): a body
        that is not an ``event_type`` (no redelivery would make it one) is recorded as a
        permanent dead letter and terminated; an exception (a dependency down, say)
        hands it back after a backoff until it has failed ``CALIB_MAX_DELIVERIES``
        times, and then makes it a dead letter, terminated. :class:`RetryLater` hands it
        back after its delay, without an error: a deliberate "not yet", never counted.
        """

        ack_wait_s = ack_wait_s or consumer.ack_wait_s

        @self.broker.subscriber(
            consumer.subject,
            **durable_consumer(consumer.durable, self.config, ack_wait_s=ack_wait_s),
        )
        async def on_message(msg: NatsMessage) -> None:
            if self.stopping:
                # fetched after a hand-back (its own message redelivered, say): another
                # replica takes it, never this one that is about to close
                await msg.nack()
                return
            message = received(consumer.durable, msg.raw_message)
            subject = message.subject
            try:
                event = msgspec.json.decode(msg.body, type=event_type)
            except msgspec.DecodeError as error:
                await self._reject(msg, message, f"invalid event: {error}")
                return
            keepalive = asyncio.create_task(_keep_in_progress(msg, ack_wait_s / 3))
            handling = asyncio.current_task()
            self._handling.add(handling)
            try:
                await handler(event)
            except asyncio.CancelledError:
                # stopping: give the message back now, so another replica takes it at once
                # rather than after the ack wait
                self.log.info("stopping: message handed back", subject=subject)
                await msg.nack()
                raise
            except RetryLater as later:
                self.log.info(
                    "message handed back",
                    subject=subject,
                    reason=str(later),
                    retry_in_s=later.delay_s,
                )
                await msg.nack(delay=later.delay_s)
                return
            except Exception as error:  # noqa: BLE001 - retried, then a dead letter: never lost
                self.log.exception("message handling failed", subject=subject, error=str(error))
                delay = await failed(self.dead_letter_office, message, error)
                metrics.failed(consumer.durable, subject, dead=delay is None)
                await (msg.reject() if delay is None else msg.nack(delay=delay))
                return
            finally:
                keepalive.cancel()
                self._handling.discard(handling)
            await msg.ack()
            metrics.handled(consumer.durable, subject)
            await got_through(self.dead_letter_office, [message])

    async def _reject(self, msg: NatsMessage, message: Received, reason: str) -> None:
        """A permanent failure: recorded, then terminated; handed back if it cannot be
        recorded now (never dropped unrecorded)."""
        try:
            await rejected(self.dead_letter_office, message, reason)
        except Exception as error:  # noqa: BLE001 - recorded on a later delivery
            delay = backoff_s(message.delivered)
            self.log.warning(
                "rejection not recorded, will retry",
                subject=message.subject,
                reason=reason,
                error=str(error),
                retry_in_s=delay,
            )
            await msg.nack(delay=delay)
            return
        metrics.dead_letter(message.consumer, message.subject, permanent=True)
        await msg.reject()

    async def hand_back(self) -> None:
        """Cancel the messages being handled; each is given back to the stream at once, and
        any fetched until the connection closes follows it back unhandled."""
        self.stopping = True
        handling = list(self._handling)
        for task in handling:
            task.cancel()
        if handling:
            await asyncio.wait(handling, timeout=SHUTDOWN_GRACE_S)

    async def close(self) -> None:
        await self.broker.stop()
        await self.mongo.close()


def refuse_unsafe_production(config: Config) -> None:
    """In production mode, stop at once rather than run with a known secret."""
    if config.mode == "production" and (problems := config.unsafe_secrets()):
        raise SystemExit("refusing to start in production mode: " + "; ".join(problems))


async def _keep_in_progress(msg: NatsMessage, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await msg.in_progress()


def run_service(
    service: str,
    setup: Callable[[Runtime], None],
    background: Callable[[Runtime], list[Awaitable[None]]] | None = None,
) -> None:
    """Run a message-driven service until SIGTERM/SIGINT.

    ``setup`` registers the subscribers on ``runtime.broker``; ``background`` returns
    extra coroutines (timers) started once everything is connected.
    """

    async def main() -> None:
        runtime = Runtime(service)
        setup(runtime)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        starting = asyncio.create_task(runtime.connect())
        tasks = [asyncio.create_task(runtime.heartbeat_forever())]
        if runtime.config.health_port:
            tasks.append(asyncio.create_task(runtime.serve_health(runtime.config.health_port)))

        async def after_connect() -> None:
            await starting
            for coroutine in background(runtime) if background else []:
                tasks.append(asyncio.create_task(coroutine))

        tasks.append(asyncio.create_task(after_connect()))
        await stop.wait()
        runtime.log.info("stopping")
        for task in [starting, *tasks]:
            task.cancel()
        # let cancelled work hand its messages back before the connections close
        await asyncio.wait([starting, *tasks], timeout=SHUTDOWN_GRACE_S)
        await runtime.hand_back()
        await runtime.close()

    run_bounded(main(), grace_s=SHUTDOWN_GRACE_S)
