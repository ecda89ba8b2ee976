"""The runtime side of ``mixers``: the port slices of the children, the readiness the server reports."""

from __future__ import annotations

import itertools

from imsconf.app.mixer_pool import port_slices


def test_port_slices_are_disjoint_even_and_inside_the_range() -> None:
    slices = port_slices(20000, 29999, 3)
    assert slices == [(20000, 23331), (23332, 26663), (26664, 29995)]
    assert all(lo % 2 == 0 for lo, _ in slices)
    assert port_slices(20001, 20100, 1) == [(20001, 20100)]
    for (_, hi), (lo, _) in itertools.pairwise(slices):
        assert hi < lo
