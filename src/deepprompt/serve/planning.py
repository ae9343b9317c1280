"""How a batch's rows split into backbone calls: the split with the least measured forward time.

A batch of several tasks mixes short rows (SST-2 sentences) with long ones (BoolQ passages). Run as one call, every
row pads to the longest and the call pads its rows to the next power of two: on a GPU whose forward is bound by
compute (a large backbone) 22 rows of which 6 are 256 tokens long run as 32 x 256, twice the work of two calls of
8 x 256 and 16 x 128. With CUDA graphs the server knows what each padded shape costs: it times every captured
bucket once at start-up (`BucketedForward.warm`). `plan_chunks` then picks, for the rows sorted longest first,
the consecutive chunks whose summed time (plus a fixed host cost per call) is least; one call wins wherever the
fixed cost of a forward dominates (a small backbone), so the split only happens where it pays.

The search is exact and cheap: for a chunk starting at row ``i`` the cost depends only on its padded row count
(a power of two) and its first (longest) row, and taking more rows into a chunk of the same padded size never
costs more later (fewer, shorter rows remain), so each ``i`` needs only the candidates ``i + 2^k``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# a chunk's host cost beyond its timed forward (collating, the heads, the bookkeeping), in ms: a split has to save
# more than this per extra call
CALL_OVERHEAD_MS = 0.1


def plan_chunks(
    lengths: Sequence[int],
    max_rows: int,
    cost: Callable[[int, int], float | None],
    overhead_ms: float = CALL_OVERHEAD_MS,
) -> list[int] | None:
    """Sizes of consecutive chunks of ``lengths`` (sorted longest first) with the least summed ``cost(rows,
    longest) + overhead_ms``, each of at most ``max_rows`` rows; None where some chunk has no cost (a shape
    that was not timed: the caller keeps its own chunking)."""
    n = len(lengths)
    if n == 0:
        return []
    best = [0.0] * (n + 1)  # best[i]: the least time of rows i.. (best[n] = 0)
    step = [0] * (n + 1)
    sizes = []
    k = 1
    while k < max_rows:
        sizes.append(k)
        k *= 2
    sizes.append(max_rows)
    for i in range(n - 1, -1, -1):
        choice, least = 0, float("inf")
        for size in sizes:
            j = min(n, i + size)
            c = cost(j - i, lengths[i])
            if c is None:
                return None
            total = c + overhead_ms + best[j]
            if total <= least + 1e-9:  # a tie goes to the bigger chunk
                choice, least = j - i, total
            if j == n:
                break
        best[i], step[i] = least, choice
    plan, i = [], 0
    while i < n:
        plan.append(step[i])
        i += step[i]
    return plan
