from tests.daemon.conftest import sim, sim_url, world

__all__ = ["sim", "sim_url", "world"]
