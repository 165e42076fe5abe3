"""Settings every test of the repository shares (the fixtures are in `paysync_dev`'s pytest plugins)."""

from hypothesis import HealthCheck, settings

# A property test checks what holds, never how fast: no per-example deadline (Hypothesis' default 200 ms
# fails examples on a busy CI host, reported as flaky), and generation that is slow there is not an error.
settings.register_profile("paysync", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("paysync")
