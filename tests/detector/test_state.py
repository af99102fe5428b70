"""The per-key state columns: which keys complete a baseline slot at which bucket, and the roll
that does it (through views of the groups' blocks of ids)."""

from __future__ import annotations

import numpy as np
import pytest

from detector import DetectorConfig
from detector.state import GROUP_KEYS, ROLLED_COLUMNS, SLOT_MAX, KeyState
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
    for name in ("ring_n", "ring_e", "ring_k"):
        column = getattr(st, name)
        column[..., :used] = rng.integers(0, 50, column[..., :used].shape)
    current = rng.integers(0, 50, (3, used))
    current[0, 3] = SLOT_MAX + 5  # clipped when it joins the ring
    st.set_current(current, used)
    st.rebuild(None, used)
    assert np.array_equal(st.current(used), current)
    before = {
        name: getattr(st, name).copy()
        for name in ("ring_n", "ring_e", "ring_k", "sum_n", "sum_e2", "phi", "collapse_at")
    }
    t = 3 * CFG.slot_buckets + 4
    pos = (t // CFG.slot_buckets) % CFG.baseline_slots
    st.roll(t, used)
    group = st.group(t, used)
    others = np.setdiff1d(np.arange(st.capacity), group)
    for name, old in before.items():
        assert np.array_equal(getattr(st, name)[..., others], old[..., others]), name
    after = st.current(used)
    assert np.array_equal(after[:, np.setdiff1d(np.arange(used), group)], np.delete(current, group, axis=1))
    assert not after[:, group].any()  # the group's new slot starts empty
    new_n = np.minimum(current[0, group], SLOT_MAX)
    assert np.array_equal(st.ring_n[pos, group], new_n)
    assert np.array_equal(st.ring_k[pos, group], current[2, group])
    old_n = before["ring_n"][pos, group].astype(np.int64)
    assert np.array_equal(st.sum_n[group], before["sum_n"][group] + new_n - old_n)
    # every derived column of the group is what a rebuild from the raw columns gives
    rolled = {name: getattr(st, name)[..., :used].copy() for name in ROLLED_COLUMNS}
    assert {"phi", "phi_n", "collapse_at", "sum_n2"} <= set(rolled)
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


def _dispersion_by_definition(sums: np.ndarray, cfg: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """phi and phi_n as their definitions read, with a mask for every zero case."""
    slots, e, n, e2, ne, n2 = (sums[name].astype(np.float64) for name in ("s", "e", "n", "e2", "ne", "n2"))
    p = np.divide(e, n, out=np.zeros_like(e), where=n > 0)
    resid = e2 - 2 * p * ne + p * p * n2
    prior, weight = cfg.dispersion_prior, cfg.dispersion_prior_errors
    phi = np.divide(resid + prior * weight, e + weight, out=np.ones_like(e), where=e + weight > 0)
    mean = np.divide(n, slots, out=np.zeros_like(n), where=slots > 0)
    var = np.divide(n2 - slots * mean * mean, slots - 1, out=np.zeros_like(n), where=slots > 1)
    phi_n = np.divide(var, mean, out=np.ones_like(n), where=mean > 0)
    return np.clip(phi, 1, cfg.max_dispersion), np.clip(phi_n, 1, cfg.max_dispersion)


@pytest.mark.parametrize("weight", [0.0, 20.0])
def test_dispersion_without_masks_equals_its_definition(weight: float) -> None:
    cfg = DetectorConfig(dispersion_prior_errors=weight)
    rng = np.random.default_rng(8)
    keys, slots = 2000, cfg.baseline_slots
    n = rng.poisson(rng.uniform(0, 400, keys), (slots, keys))
    n[:, :50] = 0  # no events at all
    n[:-1, 50:100] = 0  # one slot with events
    n[:, 100:150] = 7  # no spread
    e = rng.binomial(n, rng.uniform(0, 0.2, keys))
    e[:, 150:200] = 0  # no errors
    k = np.where(n > 0, cfg.slot_buckets, rng.integers(0, 2, (slots, keys)))  # events imply buckets
    k[:, :150] = np.where(n[:, :150] > 0, cfg.slot_buckets, 0)  # only the slots with events admitted any
    st = KeyState(cfg, keys)
    st.ring_n[:, :keys], st.ring_e[:, :keys], st.ring_k[:, :keys] = n, e, k
    st.rebuild(None, keys)
    sums = {"s": (k > 0).sum(0), "e": e.sum(0), "n": n.sum(0), "e2": (e * e).sum(0), "ne": (n * e).sum(0)}
    sums["n2"] = (n * n).sum(0)
    phi, phi_n = _dispersion_by_definition(sums, cfg)
    assert np.allclose(st.phi[:keys], phi, rtol=1e-9, atol=0)
    assert np.allclose(st.phi_n[:keys], phi_n, rtol=1e-9, atol=0)
    # the zero cases exactly: no events, a single slot or no spread is no overdispersion of volume
    assert (st.phi_n[:150] == 1.0).all()
    assert (st.phi[:50] == (cfg.dispersion_prior if weight else 1.0)).all()
    # and the values of a key with no baseline are those of empty sums
    assert st.phi[keys] == st.phi[0]
    assert st.phi_n[keys] == 1.0
