"""How a batch's rows split into backbone calls: the split with the least measured forward time.

A batch of several tasks mixes short rows (SST-2 sentences) with long ones (BoolQ passages). Run as one call, every
row pads to the longest and the call pads its rows to the next power of two: on a GPU whose forward is bound by
compute (a large backbone) 22 rows of which 6 are 256 tokens long run as 32 x 256, twice the work of two calls of
8 x 256 and 16 x 32. Where batches are padded to shape buckets (CUDA graphs, or an eager forward with
``eager_buckets``) the server knows what each padded shape costs: it times every bucket once at start-up
(`BucketedForward.warm`). `plan_chunks` then picks, for the rows sorted longest first, the calls whose summed time
(plus a fixed host cost per call) is least; one call wins wherever the fixed cost of a forward dominates (a small
backbone), so the split only happens where it pays.

The search cuts only between rows of different padded lengths (rows of one length bucket stay together, in calls
of at most ``max_rows``): a batch has a few such groups (one per task, roughly), so the exact search over where to
cut between them takes a few dozen lookups, little host time beside a millisecond's forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# a chunk's host cost beyond its timed forward (collating, the heads, the bookkeeping), in ms: a split has to save
# more than this per extra call
CALL_OVERHEAD_MS = 0.1


def plan_chunks(
    widths: Sequence[int],
    max_rows: int,
    cost: Callable[[int, int], float | None],
    overhead_ms: float = CALL_OVERHEAD_MS,
) -> list[int] | None:
    """Sizes of consecutive calls over rows of padded lengths ``widths`` (longest first): the least summed
    ``cost(rows, width) + overhead_ms`` among the splits that cut between length buckets, each call of at most
    ``max_rows`` rows. None where there is nothing to choose (one length bucket) or some call's shape has no cost
    (it was not timed): the caller keeps its own chunking."""
    groups: list[list[int]] = []  # [first row, rows] of each run of equal widths
    for i, width in enumerate(widths):
        if groups and widths[groups[-1][0]] == width:
            groups[-1][1] += 1
        else:
            groups.append([i, 1])
    if len(groups) < 2:
        return None

    def calls(first: int, rows: int) -> tuple[float, list[int]] | None:
        """Rows ``first`` .. ``first + rows`` in calls of ``max_rows`` (each padded to its own first row)."""
        total, sizes = 0.0, []
        for at in range(first, first + rows, max_rows):
            size = min(max_rows, first + rows - at)
            t = cost(size, widths[at])
            if t is None:
                return None
            total += t + overhead_ms
            sizes.append(size)
        return total, sizes

    n = len(groups)
    best: list[tuple[float, list[int]]] = [(0.0, [])] * (n + 1)  # best[a]: the least time of groups a..
    for a in range(n - 1, -1, -1):
        least: tuple[float, list[int]] | None = None
        rows = 0
        for b in range(a, n):  # groups a..b together, then the best of the rest
            rows += groups[b][1]
            these = calls(groups[a][0], rows)
            if these is None:
                return None
            total = these[0] + best[b + 1][0]
            if least is None or total <= least[0] + 1e-9:  # a tie goes to the fewer, bigger calls
                least = (total, these[1] + best[b + 1][1])
        best[a] = least  # type: ignore[assignment]
    return best[0][1]
