"""Shared test settings and fixtures: hypothesis profiles sized for a 2-core CI machine,
the toy crop index, and a smoke model trained and exported on it."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fasdistill.export.pipeline import ExportOptions, export_checkpoint
from support import make_index, trained

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile("default")


# --------------------------------------------------------------- a toy set and a model on it
# Built once per test module that asks (module scope), as each module did on its own before.


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared-index look-alike: 12 train, 8 dev and 8 test 16-px crops per class."""
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 12, "dev": 8, "test": 8})


@pytest.fixture(scope="module")
def smoke_checkpoint(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``best.pt`` of the smoke-cnn trained 2 epochs at 16 px on :func:`index`."""
    return trained(index, tmp_path_factory.mktemp("run"), "smoke-cnn", epochs=2)


@pytest.fixture(scope="module")
def smoke_onnx(
    smoke_checkpoint: Path, index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """:func:`smoke_checkpoint` exported to ONNX (parity-checked, no latency timing)."""
    out = tmp_path_factory.mktemp("export")
    options = ExportOptions(formats=("onnx",), latency_runs=0)
    export_checkpoint(smoke_checkpoint, index, out, options, log=lambda _: None)
    return out / "model.onnx"
