"""The search tests' one real local Ray cluster."""

import pytest


@pytest.fixture(scope="package")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the Ray tests of this package: ray.init costs ~3 s and
    ~0.9 GB. Package-scoped, so its daemons (~7 % of a core while idle) are gone before the
    rest of the suite runs on the same two cores."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
