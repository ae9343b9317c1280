"""The shape facts about a backbone that deep prompts must match."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import PretrainedConfig


@dataclass(frozen=True)
class BackboneGeometry:
    model_type: str
    num_layers: int
    num_kv_heads: int  # key/value heads (fewer than query heads in GQA models)
    head_dim: int
    hidden_size: int
    max_positions: int | None

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> BackboneGeometry:
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        return cls(
            model_type=text.model_type,
            num_layers=text.num_hidden_layers,
            num_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
            head_dim=head_dim,
            hidden_size=text.hidden_size,
            max_positions=getattr(text, "max_position_embeddings", None),
        )

    @property
    def kv_width(self) -> int:
        """Numbers in one layer's key (or value) for one prompt position."""
        return self.num_kv_heads * self.head_dim

    def to_dict(self) -> dict:
        return asdict(self)
