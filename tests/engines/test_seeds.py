"""The one seed rule: variants reproduce alone, and no take repeats another's fills."""

from __future__ import annotations

from inpaint_studio.engines.seeds import SEED_MAX, next_take_seed, variant_seed


def test_variant_zero_is_the_request_seed_so_a_variant_reproduces_alone() -> None:
    for seed in (0, 1, 7, 12345, SEED_MAX):
        assert variant_seed(seed, 0) == seed
        for i in range(1, 6):
            own = variant_seed(seed, i)
            assert variant_seed(own, 0) == own and 0 <= own <= SEED_MAX


def test_no_two_takes_or_nearby_seeds_share_a_variant_seed() -> None:
    """With seed + i, take seed+1 would repeat N-1 variants of take seed; the mix must not."""
    seen: dict[int, tuple[int, int, int]] = {}
    for base in range(40):
        for take in range(-1, 5):  # -1: the first run itself
            seed = base if take < 0 else next_take_seed(base, take)
            for index in range(8):
                value = variant_seed(seed, index)
                assert value not in seen or seen[value] == (base, take, index), (value, seen.get(value))
                seen[value] = (base, take, index)
    assert len(seen) == 40 * 6 * 8 - 0  # all distinct
