"""Test-wide set-up: every pytest process gets its own ROS graph before anything imports rclpy."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ros_testing import allocate_domain_id

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow (soak, benchmarks)")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["ROS_DOMAIN_ID"] = str(allocate_domain_id())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_HOME"] = tempfile.mkdtemp(prefix="sim2real-test-roshome-")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # ONNX graphs exported by tests (random checkpoints) go to a per-run temp cache, not ~/.cache
    os.environ["SIM2REAL_CACHE_DIR"] = tempfile.mkdtemp(prefix="sim2real-test-cache-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow test: opt in with --run-slow")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device (benchmarks/gpu_check.sh runs these on one)")
    cuda = None
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "cuda" in item.keywords:
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (real CARLA frames, real camera frames, bag fixtures)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test material not found at {SHARED_DATA}: CI puts shared/ beside the clone")
    return SHARED_DATA


@pytest.fixture
def ros_context():
    """An rclpy Context on a fresh, locked ROS domain; shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=allocate_domain_id())
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture(scope="module")
def lite():
    """The ``lite`` GeneratorConfig."""
    from sim2real.translator.config import get_generator_config

    return get_generator_config("lite")


@pytest.fixture(scope="module")
def generator(lite):
    """The lite generator with every float tensor perturbed away from its (partly zero) initialisation, so
    parity / round-trip tests compare non-trivial weights."""
    import torch

    from sim2real.translator.generator import TranslatorGenerator

    torch.manual_seed(0)
    gen = TranslatorGenerator(lite)
    with torch.no_grad():
        for t in gen.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.05)
    return gen.eval()
