"""LengthGroupedSampler: a permutation per epoch, homogeneous batches, reproducible, shardable."""

from __future__ import annotations

import random
from statistics import mean

import pytest
from torch.utils.data import DistributedSampler

from deepprompt.data import LengthGroupedSampler

N, BATCH = 1000, 8


@pytest.fixture
def lengths() -> list[int]:
    rng = random.Random(0)
    return [rng.randint(1, 200) for _ in range(N)]


def batches(indices: list[int], size: int = BATCH) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def mean_spread(indices: list[int], lengths: list[int]) -> float:
    return mean(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches(indices))


def test_each_index_exactly_once_per_epoch(lengths: list[int]) -> None:
    sampler = LengthGroupedSampler(lengths, BATCH, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == N
        assert sorted(order) == list(range(N))


def test_batches_are_homogeneous_and_longest_comes_first(lengths: list[int]) -> None:
    order = list(LengthGroupedSampler(lengths, BATCH, seed=1))
    shuffled = random.Random(1).sample(range(N), N)
    # Random batches of lengths 1..200 spread ~150; grouped ones only a few tokens.
    assert mean_spread(order, lengths) < 0.1 * mean_spread(shuffled, lengths)
    assert lengths[order[0]] == max(lengths)


def test_order_depends_only_on_seed_and_epoch(lengths: list[int]) -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = LengthGroupedSampler(lengths, BATCH, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


def test_small_dataset_still_reshuffles_batches() -> None:
    # One 50x megabatch would sort all 200 examples and fix the batch order across epochs.
    lengths = list(range(200))
    sampler = LengthGroupedSampler(lengths, 4, seed=0)
    assert list(sampler) != sorted(range(200), reverse=True)
    first = list(sampler)
    sampler.set_epoch(1)
    assert first != list(sampler)


@pytest.mark.parametrize(("drop_last", "per_rank"), [(False, 334), (True, 333)])
def test_shards_cover_the_data_evenly(lengths: list[int], drop_last: bool, per_rank: int) -> None:
    shards = [
        list(LengthGroupedSampler(lengths, BATCH, seed=3, num_replicas=3, rank=r, drop_last=drop_last))
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [per_rank] * 3
    seen = [i for s in shards for i in s]
    if drop_last:
        assert len(set(seen)) == len(seen) == 999
    else:
        assert set(seen) == set(range(N)) and len(seen) == 1002  # two indices repeated as padding
    # A rank's batch comes from a window of BATCH * 3 sorted neighbours: coarser, still far from random.
    shuffled = random.Random(1).sample(range(N), N)
    for shard in shards:
        assert mean_spread(shard, lengths) < 0.2 * mean_spread(shuffled, lengths)


def test_is_a_distributed_sampler_so_lightning_does_not_rewrap_it(lengths: list[int]) -> None:
    sampler = LengthGroupedSampler(lengths, BATCH, seed=0, num_replicas=2, rank=1)
    assert isinstance(sampler, DistributedSampler)
    with pytest.raises(ValueError):
        LengthGroupedSampler(lengths, BATCH, num_replicas=2, rank=2)
