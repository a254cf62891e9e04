"""What the routes are given: one :class:`Gateway` of port bundles, built once (by the
composition root from the adapters, by the route tests from the in-memory fakes), and
handed to the handlers by name through Litestar's dependency injection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias, TypeVar

from litestar import Request
from litestar.di import Dependency, Provide
from litestar.params import SkipValidationMarker

from calib_app.access import Access
from calib_app.calibration import FrameLibrary
from calib_app.dead_letters import DeadLetterOffice
from calib_app.needs import Inventory
from calib_app.ports import HeartbeatRepository, LifecycleService, Log, RejectionRepository
from calib_app.presigned import PresignedUploads
from calib_app.queueing import JobQueue
from calib_app.uploads import Uploads
from calib_core.access import Principal
from calib_core.limits import ImageLimits
from calib_gateway.ports import JobFeed, Liveness, Metrics, SystemProbes
from calib_gateway.uploads.receiver import UploadReceiver

T = TypeVar("T")
#: A handler parameter the gateway injects by its name. Not validated (the composition
#: root built it, and a Protocol cannot be checked by ``isinstance``).
Injected: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]


@dataclass(frozen=True)
class Gateway:
    """Everything the routes use: the use cases' port bundles, the gateway's own ports
    (:mod:`calib_gateway.ports`) and the upload size limit."""

    library: FrameLibrary
    queue: JobQueue
    inventory: Inventory
    uploads: Uploads
    presigned: PresignedUploads
    access: Access
    rejections: RejectionRepository
    heartbeats: HeartbeatRepository
    dead_letters: DeadLetterOffice
    lifecycle: LifecycleService
    feed: JobFeed
    probes: SystemProbes
    liveness: Liveness
    metrics: Metrics
    upload_limit_bytes: int
    image_limits: ImageLimits = ImageLimits()
    """What an uploaded file's header may declare (SPEC §12)."""

    @property
    def log(self) -> Log:
        return self.library.log

    def provided(self) -> dict[str, Any]:
        """Each dependency a handler may name, by its parameter name."""
        return {
            "library": self.library,
            "queue": self.queue,
            "inventory": self.inventory,
            "uploads": self.uploads,
            "presigned": self.presigned,
            "access": self.access,
            "rejections": self.rejections,
            "heartbeats": self.heartbeats,
            "dead_letters": self.dead_letters,
            "lifecycle": self.lifecycle,
            "feed": self.feed,
            "probes": self.probes,
            "liveness": self.liveness,
            "metrics": self.metrics,
            "observatories": self.access.observatories,
            "settings": self.library.settings,
            "clock": self.library.clock,
            "receiver": UploadReceiver(self.access.observatories, self.upload_limit_bytes),
            "image_limits": self.image_limits,
        }


def _constant(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def _caller(request: Request) -> Principal:
    return request.user


def dependencies(gateway: Gateway) -> dict[str, Provide]:
    """Litestar's table: the gateway's ports and bundles, and ``caller``, the principal
    the request's token authenticates."""
    provided = {name: _constant(value) for name, value in gateway.provided().items()}
    return {**provided, "caller": Provide(_caller, sync_to_thread=False)}
