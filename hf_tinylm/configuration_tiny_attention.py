"""Configuration of the hf_tinylm self-attention decoder (a Llama-shaped pre-norm transformer)."""

from .task_formats import ChecksPipelineTask
from .tinylm_compat import PreTrainedConfig


class TinyAttentionConfig(ChecksPipelineTask, PreTrainedConfig):
    r"""Configuration of [`TinyAttentionModel`]: pre-norm decoder blocks (RMSNorm, causal multi-head self-attention
    with rotary positions and optional grouped-query heads, SwiGLU MLP), tied input/output embeddings by default.

    With `hidden_dropout=0` the architecture is exactly transformers' Llama, which is what makes `hf_tinylm.convert`
    lossless in both directions.

    Args:
        vocab_size: number of tokens the embedding knows.
        hidden_size: width of the residual stream (d_model).
        intermediate_size: width of the SwiGLU MLP; defaults to 8/3 * hidden_size rounded up to a multiple of 64.
        num_hidden_layers: number of decoder blocks.
        num_attention_heads: query heads; attention is scaled by 1/sqrt(head_dim).
        num_key_value_heads: key/value heads (grouped-query attention); defaults to `num_attention_heads`.
        head_dim: per-head width; defaults to `hidden_size // num_attention_heads`.
        max_position_embeddings: longest sequence the model accepts. Longer inputs raise unless `rope_parameters`
            names a scaling `rope_type` ("linear", "dynamic", "yarn", ...), which says how to extend.
        rope_parameters: rotary settings, e.g. `{"rope_type": "default", "rope_theta": 10000.0}`.
        hidden_dropout: dropout on each block's residual branches (0 reproduces Llama exactly).
        attention_dropout: dropout on attention probabilities.

    Example:

    ```python
    >>> from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM
    >>> model = TinyAttentionForCausalLM(TinyAttentionConfig(vocab_size=512, hidden_size=128, num_attention_heads=4))
    ```"""

    model_type = "tiny_attention"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 256,
        intermediate_size: int | None = None,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        hidden_act: str = "silu",
        max_position_embeddings: int = 1024,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | list[int] | None = None,
        tie_word_embeddings: bool = True,
        rope_parameters: dict | None = None,
        attention_bias: bool = False,
        mlp_bias: bool = False,
        attention_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        **kwargs,
    ):
        # Plain attributes set before the base class's __init__ (not a dataclass): the form every release reads.
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = (
            -(-8 * hidden_size // 3 // 64) * 64 if intermediate_size is None else intermediate_size
        )
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.head_dim = hidden_size // max(num_attention_heads, 1) if head_dim is None else head_dim
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0, **(rope_parameters or {})}
        self.attention_bias = attention_bias
        self.mlp_bias = mlp_bias
        self.attention_dropout = attention_dropout
        self.hidden_dropout = hidden_dropout
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id
        self.validate_architecture()
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def validate_architecture(self):
        """Reject values the model cannot be built with, naming the field."""
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be a multiple of `num_key_value_heads` "
                f"({self.num_key_value_heads}) for grouped-query attention."
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"`head_dim` ({self.head_dim}) must be even for rotary position embeddings.")
        for name in ("attention_dropout", "hidden_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)}.")
        if self.rms_norm_eps <= 0:
            raise ValueError(f"`rms_norm_eps` must be positive, got {self.rms_norm_eps}.")
        for name in ("pad_token_id", "bos_token_id"):
            token_id = getattr(self, name)
            if token_id is not None and not 0 <= token_id < self.vocab_size:
                raise ValueError(f"`{name}` ({token_id}) is outside the vocabulary (size {self.vocab_size}).")


__all__ = ["TinyAttentionConfig"]
