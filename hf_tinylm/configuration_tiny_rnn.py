"""Configuration of the hf_tinylm recurrent language model (stacked Elman RNN, LSTM or GRU layers)."""

from .task_formats import ChecksPipelineTask
from .tinylm_compat import PreTrainedConfig

RECURRENT_CELLS = ("rnn", "lstm", "gru")


class TinyRNNConfig(ChecksPipelineTask, PreTrainedConfig):
    r"""Configuration of [`TinyRNNModel`]: token embedding, `num_hidden_layers` recurrent layers run by torch's fused
    kernels, tied input/output embeddings by default.

    Each layer keeps a fixed-size state (h, plus c for the LSTM) in a `RecurrentStateCache`, so a decoding step costs
    the same at any context length.

    Args:
        vocab_size: number of tokens the embedding knows.
        embedding_size: width of the token embedding; defaults to `hidden_size`. When it differs, the language-modelling
            head first projects the last hidden state back to `embedding_size`, so the output layer keeps the
            embedding's shape and can stay tied to it.
        hidden_size: width of each recurrent layer's state.
        num_hidden_layers: number of stacked recurrent layers.
        cell: "rnn" (Elman, h_t = tanh(W x_t + U h_{t-1} + b)), "lstm" or "gru", with torch.nn's equations.
        dropout: dropout on the embeddings and on the output of every layer (so between layers and before the head).
        initializer_range: standard deviation of the embedding and linear weights. Larger than transformers' usual
            0.02, as in classic RNN language models: the tied head reads a state bounded by 1 through the embedding
            matrix, and tiny embeddings give near-zero logits that are slow to start learning. Recurrent weights keep
            torch.nn's uniform(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).

    Example:

    ```python
    >>> from hf_tinylm import TinyRNNConfig, TinyRNNForCausalLM
    >>> model = TinyRNNForCausalLM(TinyRNNConfig(vocab_size=512, hidden_size=128, cell="gru"))
    ```"""

    model_type = "tiny_rnn"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 8192,
        embedding_size: int | None = None,
        hidden_size: int = 256,
        num_hidden_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        initializer_range: float = 0.1,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | list[int] | None = None,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        # Plain attributes set before the base class's __init__ (not a dataclass): the form every release reads.
        self.vocab_size = vocab_size
        self.embedding_size = hidden_size if embedding_size is None else embedding_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.cell = cell
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.use_cache = use_cache
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
        if self.cell not in RECURRENT_CELLS:
            raise ValueError(f"`cell` must be one of {RECURRENT_CELLS}, got {self.cell!r}.")
        for name in ("vocab_size", "hidden_size", "embedding_size", "num_hidden_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout}.")
        for name in ("pad_token_id", "bos_token_id"):
            token_id = getattr(self, name)
            if token_id is not None and not 0 <= token_id < self.vocab_size:
                raise ValueError(f"`{name}` ({token_id}) is outside the vocabulary (size {self.vocab_size}).")


__all__ = ["TinyRNNConfig"]
