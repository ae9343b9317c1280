"""Length-grouped sampling: batches of similar length waste little compute on padding."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class LengthGroupedSampler(DistributedSampler):
    """Random order, but consecutive ``batch_size`` indices have similar lengths (the Hugging Face scheme).

    Each epoch: shuffle all indices, cut them into megabatches of ``megabatch_mult * batch_size *
    num_replicas``, sort each megabatch by length (longest first), and move the single longest example
    to the very front so an out-of-memory batch shows up at the first step rather than hours in.
    The order depends only on ``(seed, epoch)``; call ``set_epoch`` before each epoch (Lightning does).

    ``megabatch_mult`` is capped so that at least ~4 megabatches exist: on a small data set one
    megabatch would sort everything and the batch order would be the same every epoch.

    Under DDP the grouped list is padded (by repeating its start, as ``DistributedSampler`` does) or
    truncated (``drop_last``) to a multiple of ``num_replicas`` and dealt out round-robin, so rank r's
    k-th batch comes from one window of ``batch_size * num_replicas`` neighbours in sorted order.
    Subclassing ``DistributedSampler`` tells Lightning that the sampler already shards, so it is not
    wrapped in a second (shuffling) distributed sampler. ``num_replicas``/``rank`` default to the
    initialised process group, else a single process; only then is each index yielded exactly once.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        megabatch_mult: int = 50,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1 or megabatch_mult < 1:
            raise ValueError(
                f"batch_size and megabatch_mult must be >= 1, got {batch_size} and {megabatch_mult}"
            )
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        # Passing explicit num_replicas/rank keeps DistributedSampler from requiring a process group.
        super().__init__(
            lengths, num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed, drop_last=drop_last
        )
        self.lengths = list(lengths)
        self.batch_size = batch_size
        group = batch_size * num_replicas
        self.megabatch_size = group * max(1, min(megabatch_mult, len(self.lengths) // (group * 4)))

    def grouped_indices(self) -> list[int]:
        """The full length-grouped order for the current epoch, before sharding across replicas."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.megabatch_size
        megabatches = [
            sorted(order[i : i + size], key=self.lengths.__getitem__, reverse=True)
            for i in range(0, len(order), size)
        ]
        if not megabatches:
            return []
        longest = max(range(len(megabatches)), key=lambda m: self.lengths[megabatches[m][0]])
        megabatches[0][0], megabatches[longest][0] = megabatches[longest][0], megabatches[0][0]
        return [i for megabatch in megabatches for i in megabatch]

    def __iter__(self) -> Iterator[int]:
        indices = self.grouped_indices()
        if self.drop_last:
            indices = indices[: self.total_size]
        elif indices:
            padding = self.total_size - len(indices)
            indices += (indices * math.ceil(padding / len(indices)))[:padding]
        return iter(indices[self.rank : self.total_size : self.num_replicas])
