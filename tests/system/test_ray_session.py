"""A private Ray whose node misses Ray's fixed start-up wait (a busy machine) is started again."""

import pytest

from questlearn._ray_session import LOCAL_START_ATTEMPTS, start_local_ray


class RayStartingSlowly:
    """Stands in for the ``ray`` module's ``init``/``shutdown``: its node misses the start-up wait
    ``misses`` times, as Ray reports it (a bare ``Exception``), then starts."""

    def __init__(self, misses, error="The current node timed out during startup. This could happen because ..."):
        self.misses, self.error, self.inits, self.shutdowns = misses, error, [], 0

    def init(self, **options):
        self.inits.append(options)
        if len(self.inits) <= self.misses:
            raise Exception(self.error)

    def shutdown(self):
        self.shutdowns += 1


def test_a_node_that_misses_the_start_up_wait_is_started_again_and_says_so(capsys):
    ray = RayStartingSlowly(misses=LOCAL_START_ATTEMPTS - 1)
    start_local_ray(ray, num_cpus=1)
    assert len(ray.inits) == LOCAL_START_ATTEMPTS and ray.shutdowns == LOCAL_START_ATTEMPTS - 1
    assert all(options == {"num_cpus": 1} for options in ray.inits)
    assert capsys.readouterr().err.count("starting it again") == LOCAL_START_ATTEMPTS - 1


def test_the_last_start_up_timeout_and_any_other_failure_are_raised():
    with pytest.raises(Exception, match="timed out during startup"):
        start_local_ray(RayStartingSlowly(misses=LOCAL_START_ATTEMPTS))
    other = RayStartingSlowly(misses=1, error="port 6379 is taken")
    with pytest.raises(Exception, match="port 6379"):
        start_local_ray(other)
    assert len(other.inits) == 1
