"""Post-training prompt compression by truncated SVD.

Every prompted layer l holds a key matrix K_l and a value matrix V_l, each ``(m_l, kv_width)``. Each is
replaced by its best rank-r approximation (Eckart-Young) ``A ~ U_r S_r V_r^T``, with
``r = max(1, round(ratio * min(m_l, kv_width)))``. The number of prompt vectors m_l stays the same: what
shrinks is the storage, the factors ``U_r S_r`` ``(m_l, r)`` and ``V_r^T`` ``(r, kv_width)``, i.e.
``r * (m_l + kv_width)`` floats instead of ``m_l * kv_width``. Where the factors are not smaller than the
dense matrix (high ratios, short prompts) one stores the dense matrix, so ``stored_floats`` counts
``min(r * (m_l + kv_width), m_l * kv_width)``; ``factored_floats`` is the plain factor count.
Evaluation uses the reconstruction ``U_r S_r V_r^T`` (no change to the attention).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from deepprompt.prompts.encoder import PromptEncoder


@dataclass
class CompressionStats:
    ratio: float
    ranks: dict[int, int]  # per layer (the same rank for its key and value matrices)
    dense_floats: int
    factored_floats: int
    stored_floats: int
    relative_error: float  # ||A - A_r||_F / ||A||_F over all key and value matrices together

    def to_dict(self) -> dict:
        return asdict(self)


def rank_for(ratio: float, rows: int, cols: int) -> int:
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"compression ratio must be in (0, 1], got {ratio}")
    return max(1, min(min(rows, cols), round(ratio * min(rows, cols))))


def low_rank_factors(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U_r S_r, V_r^T)`` of shapes ``(rows, r)`` and ``(r, cols)``: the best rank-r factorisation."""
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return (u[:, :rank] * s[:rank]).to(matrix.dtype), vh[:rank].to(matrix.dtype)


def low_rank(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The best rank-``rank`` approximation of a 2-D matrix (in the input's dtype)."""
    left, right = low_rank_factors(matrix, rank)
    return (left.double() @ right.double()).to(matrix.dtype)


def compress_layer_tensors(
    tensors: dict[int, torch.Tensor], ratio: float, kv_width: int
) -> tuple[dict[int, torch.Tensor], CompressionStats]:
    """``{layer: (m_l, 2 * kv_width)}`` (key columns, then value columns) -> rank-reduced copies and stats."""
    out, ranks = {}, {}
    dense = factored = stored = 0
    err2 = norm2 = 0.0
    for layer, t in tensors.items():
        t = t.detach()
        m = t.shape[0]
        r = rank_for(ratio, m, kv_width)
        ranks[layer] = r
        halves = []
        for half in (t[:, :kv_width], t[:, kv_width:]):  # K_l, V_l
            approx = low_rank(half, r)
            halves.append(approx)
            err2 += float((approx.double() - half.double()).pow(2).sum())
            norm2 += float(half.double().pow(2).sum())
            dense += m * kv_width
            factored += r * (m + kv_width)
            stored += min(r * (m + kv_width), m * kv_width)
        out[layer] = torch.cat(halves, dim=1)
    stats = CompressionStats(ratio, ranks, dense, factored, stored, (err2 / max(norm2, 1e-30)) ** 0.5)
    return out, stats


@torch.no_grad()
def compress_encoder(encoder: PromptEncoder, ratio: float) -> CompressionStats:
    """Replace a (folded) encoder's prompts in place by their rank-reduced reconstructions."""
    encoder.fold()
    compressed, stats = compress_layer_tensors(encoder.layer_tensors(), ratio, encoder.geometry.kv_width)
    encoder.set_layer_tensors(compressed)
    return stats
