"""The plugin simulator: realistic N.I.N.A. frames uploaded and announced on
``frame.registered.<observatory>`` exactly as the capture plugin does, with nothing but
the observatory's plugin token (:class:`calib_cli.plugin.PluginClient`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from tqdm import tqdm

from calib_cli.plugin import PluginClient
from calib_stack import synthetic


@dataclass
class SimulationPlan:
    observatory_id: str
    camera: synthetic.Camera
    bias: int = 0
    darks: int = 12
    flats: int = 0
    lights: int = 0
    dark_exposure_s: float = 60.0
    flat_exposure_s: float = 2.0
    light_exposure_s: float = 60.0
    temperature_c: float = -10.0
    filters: list[str] = field(default_factory=lambda: ["L"])
    seed: int = 1
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=1))

    def frames(self):
        """(frame_type, exposure_s, filter) for every frame, in capture order."""
        yield from (("bias", 0.0, None) for _ in range(self.bias))
        yield from (("dark", self.dark_exposure_s, None) for _ in range(self.darks))
        for name in self.filters:
            yield from (("flat", self.flat_exposure_s, name) for _ in range(self.flats))
        for name in self.filters:
            yield from (("light", self.light_exposure_s, name) for _ in range(self.lights))

    @property
    def total(self) -> int:
        return self.bias + self.darks + (self.flats + self.lights) * len(self.filters)


def make_frame(
    plan: SimulationPlan,
    rng: np.random.Generator,
    frame_type: str,
    exposure_s: float,
    filter_name: str | None,
    temperature_c: float,
    captured_at: datetime,
) -> bytes:
    camera = plan.camera
    if frame_type == "bias":
        data = synthetic.bias_frame(camera, rng=rng)
    elif frame_type == "dark":
        data = synthetic.dark_frame(
            camera, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng
        )
    elif frame_type == "flat":
        data = synthetic.flat_frame(
            camera,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )
    else:
        data, _ = synthetic.light_frame(
            camera,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )
    header = synthetic.nina_header(
        frame_type=frame_type,
        camera=camera,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        set_temperature_c=plan.temperature_c,
        filter_name=filter_name,
        captured_at=captured_at,
    )
    return synthetic.fits_bytes(data, header)


async def simulate(
    plugin: PluginClient, plan: SimulationPlan, *, progress: bool = True
) -> list[str]:
    """Capture, upload and announce every frame of ``plan`` as the observatory's plugin;
    returns the event ids."""
    rng = np.random.default_rng(plan.seed)
    event_ids = []
    with tqdm(
        total=plan.total,
        desc=f"simulating {plan.observatory_id}",
        unit="frame",
        disable=not progress,
    ) as bar:
        for index, (frame_type, exposure_s, filter_name) in enumerate(plan.frames()):
            temperature = round(plan.temperature_c + float(rng.normal(0, 0.1)), 2)
            captured_at = plan.start + timedelta(seconds=index * (exposure_s + 5))
            data = await asyncio.to_thread(
                make_frame,
                plan,
                rng,
                frame_type,
                exposure_s,
                filter_name,
                temperature,
                captured_at,
            )
            # like the plugin: the event carries the key and digest, the header has the rest
            filename = f"{frame_type}_{captured_at:%Y%m%d_%H%M%S}_{index:04d}.fits"
            event_ids.append(await plugin.register(filename, data))
            bar.update(1)
    return event_ids


def demo_plan(observatory_id: str) -> SimulationPlan:
    """The demo night: bias, darks for the lights, and lights (flats need their own darks)."""
    return SimulationPlan(
        observatory_id=observatory_id,
        camera=synthetic.Camera(width=640, height=480),
        bias=12,
        darks=12,
        flats=0,
        lights=4,
    )


def run_simulation(
    plan: SimulationPlan, *, url: str, nats_url: str, token: str, progress: bool = True
) -> list[str]:
    """Run ``plan`` as the plugin of ``plan.observatory_id`` (``token`` is its plugin
    token) against the gateway at ``url`` and the bus at ``nats_url``."""

    async def run() -> list[str]:
        client = PluginClient(
            url=url, nats_url=nats_url, token=token, observatory_id=plan.observatory_id
        )
        async with client as plugin:
            return await simulate(plugin, plan, progress=progress)

    return asyncio.run(run())
