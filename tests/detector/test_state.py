"""The per-key state columns: which keys complete a baseline slot at which bucket, and the roll
that does it (through views of the groups' blocks of ids)."""

from __future__ import annotations

import numpy as np
import pytest

from detector import DetectorConfig
from detector.state import GROUP_KEYS, SLOT_MAX, KeyState
from detector.vectorised import dispersion

CFG = DetectorConfig()


@pytest.mark.parametrize("used", [1, GROUP_KEYS - 1, GROUP_KEYS, GROUP_KEYS + 1, 700, 3000])
def test_every_key_completes_one_slot_in_each_run_of_slot_buckets(used: int) -> None:
    st = KeyState(CFG, used)
    slot = CFG.slot_buckets
    for start in (0, 7, 123):
        groups = [st.group(t, used) for t in range(start, start + slot)]
        together = np.sort(np.concatenate(groups))
        assert together.tolist() == list(range(used))
        for t, ids in zip(range(start, start + slot), groups, strict=True):
            # whole blocks of adjacent ids, block b at the buckets congruent to b
            assert ((ids // GROUP_KEYS) % slot == t % slot).all()
            assert np.array_equal(st.group(t + slot, used), ids)
    if used >= GROUP_KEYS * slot:  # enough keys: every bucket rolls some, none rolls most
        sizes = [len(st.group(t, used)) for t in range(slot)]
        assert max(sizes) - min(sizes) <= GROUP_KEYS


def test_roll_completes_the_slot_of_the_group_and_of_no_other_key() -> None:
    rng = np.random.default_rng(5)
    used = 1000
    st = KeyState(CFG, used)
    for name in ("ring_n", "ring_e", "ring_k", "cur_n", "cur_e", "cur_k"):
        column = getattr(st, name)
        column[..., :used] = rng.integers(0, 50, column[..., :used].shape)
    st.cur_n[3] = SLOT_MAX + 5  # clipped when it joins the ring
    st.rebuild(None, used)
    before = {
        name: getattr(st, name).copy()
        for name in ("ring_n", "ring_e", "ring_k", "cur_n", "sum_n", "sum_e2", "phi")
    }
    t = 3 * CFG.slot_buckets + 4
    pos = (t // CFG.slot_buckets) % CFG.baseline_slots
    st.roll(t, used)
    group = st.group(t, used)
    others = np.setdiff1d(np.arange(st.capacity), group)
    for name, old in before.items():
        assert np.array_equal(getattr(st, name)[..., others], old[..., others]), name
    new_n = np.minimum(before["cur_n"][group], SLOT_MAX)
    assert np.array_equal(st.ring_n[pos, group], new_n)
    for name in ("cur_n", "cur_e", "cur_k"):
        assert not getattr(st, name)[group].any(), name
    old_n = before["ring_n"][pos, group].astype(np.int64)
    assert np.array_equal(st.sum_n[group], before["sum_n"][group] + new_n - old_n)
    # every derived column of the group is what a rebuild from the raw columns gives
    rolled = {
        name: getattr(st, name)[..., :used].copy()
        for name in ("sum_n", "sum_e", "sum_k", "sum_slots", "sum_e2", "sum_ne", "sum_n2", "phi", "phi_n")
    }
    st.rebuild(None, used)
    for name, values in rolled.items():
        assert np.array_equal(getattr(st, name)[..., :used], values), name
    sums = ("sum_slots", "sum_e", "sum_n", "sum_e2", "sum_ne", "sum_n2")
    phi, _ = dispersion(
        *(getattr(st, c)[group].astype(np.float64) for c in sums),
        CFG.max_dispersion, CFG.dispersion_prior, CFG.dispersion_prior_errors,
    )  # fmt: skip
    assert np.array_equal(st.phi[group], phi)


def test_capacity_is_whole_blocks() -> None:
    st = KeyState(CFG, 5)
    assert st.capacity == GROUP_KEYS
    st.ensure(GROUP_KEYS + 1)
    assert st.capacity % GROUP_KEYS == 0
    assert st.capacity > GROUP_KEYS
