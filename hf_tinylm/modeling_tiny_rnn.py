"""The hf_tinylm recurrent language model: stacked Elman RNN, LSTM or GRU layers on torch.nn's fused kernels.

Training and prefill run whole sequences through `nn.RNN` / `nn.LSTM` / `nn.GRU`, never a Python loop over time steps;
a one-token decoding step runs the matching cell function. Each layer's final state (h, and c for the LSTM) lives in a
`RecurrentStateCache` (a transformers `Cache`), batch first, so a decoding step costs the same at any context length
and beam search reorders the state like any other cache. Padding never reaches the state: each row's real tokens are moved to the front and
packed, so a left-, right- or mid-padded row ends in exactly the state of its unpadded self. Rows that pack several
documents (`position_ids` restarting at 0, as padding-free training passes them) are split into one row per document,
so no state crosses a document boundary.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_layers import GenericForQuestionAnswering, GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils.generic import can_return_tuple

from .configuration_tiny_rnn import TinyRNNConfig

# Every module a saved folder ships is imported here by name: before 5.x, transformers copies only the modules the
# loaded file itself imports, and then requires all of theirs. (The pipeline code is used by `save_pretrained`.)
from .extractive_qa import best_answers  # noqa: F401
from .pipelines_tinylm import custom_pipelines
from .task_formats import CONFIG_KEY  # noqa: F401
from .tinylm_common import CheckedGeneration, HubReadyMixin, check_forward_inputs, logits_positions
from .tinylm_compat import accepts_cache_argument, cache_of, init, output_with_cache

RECURRENT_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# The same equations for a single time step, as `nn.RNNCell` / `nn.LSTMCell` / `nn.GRUCell` run them.
SINGLE_STEP_FUNCTIONS = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}


class RecurrentStateCache(Cache):
    """The recurrent state of every layer: one tensor per layer, batch first, replaced after each forward call.

    A `Cache` (so `generate()` hands it back step after step), but not a key/value store: it holds the same amount at
    any length, `get_seq_length()` counts the positions it has read, and it cannot be rolled back to an earlier token
    (`crop`), which assisted generation would need. Batch-wise operations (beam search's `reorder_cache`, expanding or
    selecting rows) act on dimension 0 of every state.
    """

    is_compileable = False

    def __init__(self, num_layers: int):
        super().__init__(layers=[])
        self.states: list[torch.Tensor | None] = [None] * num_layers
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.states)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def get_state(self, layer_idx: int) -> torch.Tensor | None:
        """Layer `layer_idx`'s state, or None before the layer stored one (a layer then starts from zeros)."""
        return self.states[layer_idx]

    def set_state(self, state: torch.Tensor, layer_idx: int) -> None:
        self.states[layer_idx] = state

    def reset(self) -> None:
        self.states = [None] * len(self.states)
        self.seen_tokens = 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._apply_to_batch(lambda state: state.index_select(0, beam_idx.to(state.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._apply_to_batch(lambda state: state.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._apply_to_batch(lambda state: state[indices])

    def crop(self, max_length: int) -> None:
        raise ValueError(
            "A recurrent state cannot be rolled back to an earlier token, so this cache cannot be cropped (assisted "
            "generation and prompt-lookup decoding need that): decode without an assistant."
        )

    def _apply_to_batch(self, function) -> None:
        self.states = [None if state is None else function(state) for state in self.states]


class PackedDocuments:
    """The documents of packed rows, each moved to a row of its own, so every document's state starts from zeros.

    A document starts at each real token whose position id is 0 and that has a real token before it in its row (as
    padding-free training packs them: `position_ids` [[0, 1, 2, 0, 1]]); a row's first document continues the
    cached state, as an unpacked row does. Tokens keep their order; each document row is right-padded, so the
    layers' padding path runs it.
    """

    def __init__(self, starts: torch.Tensor, real: torch.Tensor):
        batch_size, seq_length = starts.shape
        index_in_row = starts.long().cumsum(dim=1)
        per_row = index_in_row[:, -1] + 1
        self.first = per_row.cumsum(dim=0) - per_row  # each row's first document
        self.last = self.first + per_row - 1
        self.document = self.first.unsqueeze(1) + index_in_row
        positions = torch.arange(seq_length, device=starts.device).expand(batch_size, seq_length)
        self.column = positions - torch.where(starts, positions, 0).cummax(dim=1).values
        self.count = int(per_row.sum())
        self.padding_mask = self.split(real)

    @staticmethod
    def find(position_ids: torch.Tensor, real: torch.Tensor) -> "PackedDocuments | None":
        """The packed documents of these rows; None when no row holds more than one."""
        starts = real & (position_ids.expand_as(real) == 0) & (real.long().cumsum(dim=1) > 1)
        return PackedDocuments(starts, real) if starts.any() else None

    def split(self, rows: torch.Tensor) -> torch.Tensor:
        """(batch, seq, ...) -> (documents, seq, ...), zeros after each document's end."""
        documents = rows.new_zeros(self.count, *rows.shape[1:])
        return documents.index_put((self.document, self.column), rows)

    def join(self, documents: torch.Tensor) -> torch.Tensor:
        return documents[self.document, self.column]

    def split_cache(self, cache: RecurrentStateCache) -> RecurrentStateCache:
        """A cache for the document rows: each row's first document starts from the row's state, the others from
        zeros."""
        documents = RecurrentStateCache(len(cache))
        for layer_idx, state in enumerate(cache.states):
            if state is not None:
                zeros = state.new_zeros(self.count, *state.shape[1:])
                documents.set_state(zeros.index_copy(0, self.first, state), layer_idx)
        return documents

    def join_cache(self, documents: RecurrentStateCache, cache: RecurrentStateCache) -> None:
        """Each row's state is that of its last document."""
        for layer_idx, state in enumerate(documents.states):
            cache.set_state(state[self.last], layer_idx)


class TinyRNNLayer(GradientCheckpointingLayer):
    """One recurrent layer (a single-layer fused torch.nn module) whose state is read from and written back to the
    cache, followed by dropout.

    In the cache the state is batch first, as beam search's reordering expects: (batch, hidden) for the RNN and GRU,
    (batch, 2, hidden) with h and c stacked for the LSTM.
    """

    def __init__(self, config: TinyRNNConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.is_lstm = config.cell == "lstm"
        self.single_step = SINGLE_STEP_FUNCTIONS[config.cell]
        input_size = config.embedding_size if layer_idx == 0 else config.hidden_size
        self.rnn = RECURRENT_MODULES[config.cell](input_size, config.hidden_size, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        r"""`padding_mask` (batch, seq) is True at real tokens; pass it only when some token is padding, since the
        unpadded path hands the whole batch to the kernel as it is."""
        state = cache.get_state(self.layer_idx) if cache is not None else None
        if state is not None and state.requires_grad:
            # Backpropagating through a state carried over from an earlier call (truncated BPTT): the cache overwrites
            # its buffer in place below, so this step reads a copy that stays as backward needs it.
            state = state.clone()
        if padding_mask is not None:
            output, new_state = self._forward_skipping_padding(hidden_states, state, padding_mask)
        elif hidden_states.shape[1] == 1 and isinstance(self.rnn, nn.RNNBase):
            output, new_state = self._forward_one_step(hidden_states, state)
        else:
            output, final_state = self.rnn(hidden_states, self._to_module_state(state))
            new_state = self._to_cache_state(final_state)
        if cache is not None:
            cache.set_state(new_state, self.layer_idx)
        return self.dropout(output)

    def _forward_skipping_padding(
        self, hidden_states: torch.Tensor, state: torch.Tensor | None, padding_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run each row's real tokens only, wherever its padding sits; padded positions output zeros.

        A stable sort moves each row's real tokens to the front, in order, and packing with the true lengths stops the
        kernel at each row's last real token, so no pad ever updates the state. A row without real tokens keeps its
        state (packing needs at least one step per row, so that row runs one step whose result is discarded).
        """
        seq_length = hidden_states.shape[1]
        real = padding_mask.long()
        lengths = real.sum(dim=1)
        # Where each token goes when the real tokens move to the front in order and the pads follow them: a
        # permutation computed with cumulative sums (no sort, so it also traces for ONNX export).
        destination = torch.where(
            padding_mask, real.cumsum(dim=1) - 1, lengths.unsqueeze(1) + (1 - real).cumsum(dim=1) - 1
        ).unsqueeze(-1)
        front_loaded = torch.zeros_like(hidden_states).scatter(1, destination.expand_as(hidden_states), hidden_states)
        packed = pack_padded_sequence(front_loaded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        packed_output, final_state = self.rnn(packed, self._to_module_state(state))
        front_output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=seq_length)
        output = front_output.gather(1, destination.expand_as(front_output)) * padding_mask.unsqueeze(-1)

        new_state = self._to_cache_state(final_state)
        previous_state = state if state is not None else torch.zeros_like(new_state)
        has_tokens = (lengths > 0).view(-1, *[1] * (new_state.dim() - 1))
        return output, torch.where(has_tokens, new_state, previous_state)

    def _forward_one_step(
        self, hidden_states: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoding step as the cell function: two small matmuls. The sequence kernel computes the same, but on CPU
        its oneDNN LSTM path pays a set-up cost per call many times the cost of one step.

        It reads the module's weights itself, so it runs only while `self.rnn` is torch.nn's own module. A wrapper
        changes the weights inside the module's forward alone (a PEFT LoRA adapter on the recurrent weights,
        `target_parameters`, adds its update there): then the step goes through the module like a sequence."""
        inputs = hidden_states[:, 0]
        if state is None:
            batch_size = inputs.shape[0]
            state_shape = (batch_size, 2, self.rnn.hidden_size) if self.is_lstm else (batch_size, self.rnn.hidden_size)
            state = inputs.new_zeros(state_shape)
        weights = (self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.rnn.bias_ih_l0, self.rnn.bias_hh_l0)
        if self.is_lstm:
            hidden, cell = self.single_step(inputs, (state[:, 0], state[:, 1]), *weights)
            return hidden.unsqueeze(1), torch.stack((hidden, cell), dim=1)
        hidden = self.single_step(inputs, state, *weights)
        return hidden.unsqueeze(1), hidden

    def _to_module_state(self, state: torch.Tensor | None):
        """Cache layout -> what torch.nn's module takes: (1, batch, hidden), or the (h, c) pair for the LSTM."""
        if state is None:
            return None
        if self.is_lstm:
            return state[:, 0].unsqueeze(0).contiguous(), state[:, 1].unsqueeze(0).contiguous()
        return state.unsqueeze(0)

    def _to_cache_state(self, module_state) -> torch.Tensor:
        if self.is_lstm:
            hidden, cell = module_state
            return torch.stack((hidden[0], cell[0]), dim=1)
        return module_state[0]


class TinyRNNPreTrainedModel(HubReadyMixin, PreTrainedModel):
    config: TinyRNNConfig
    config_class = TinyRNNConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TinyRNNLayer"]
    # The state cannot be rolled back to an earlier token, which assisted generation would need.
    _is_stateful = True
    custom_pipelines_for = staticmethod(custom_pipelines)  # what `save_pretrained` lists in the config

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """No: `generate()` must not build a key/value cache for this model, whose forward creates its own
        `RecurrentStateCache` (transformers 4.x infers this from `_is_stateful`; 5.x asks this method)."""
        return False

    def _init_weights(self, module: nn.Module):
        """Recurrent weights get torch.nn's own uniform(-1/sqrt(hidden), 1/sqrt(hidden)), the scale these cells are
        usually trained from; embeddings and linear layers follow `initializer_range` as in the base class."""
        if isinstance(module, nn.RNNBase):
            bound = module.hidden_size**-0.5
            for param in module.parameters():
                init.uniform_(param, -bound, bound)
        else:
            super()._init_weights(module)


class TinyRNNModel(TinyRNNPreTrainedModel):
    """Token embedding and the stacked recurrent layers; returns the last layer's outputs and the state cache."""

    def __init__(self, config: TinyRNNConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TinyRNNLayer(config, i) for i in range(config.num_hidden_layers))
        self.gradient_checkpointing = False
        self.post_init()

    @accepts_cache_argument
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: RecurrentStateCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""`attention_mask` (batch, seq) is 1 at tokens and 0 at padding, which never touches the state. When `cache`
        already holds a state, the mask may also cover the cached tokens (as `generate()` passes it): only its last
        `seq` columns are read, the past being folded into the state. `position_ids` (batch or 1, seq) only mark where
        packed documents start (a 0 after a real token of the row, as padding-free training passes them): each
        document then runs from a zero state, as if alone (`PackedDocuments`). `use_cache` defaults to the config's
        outside training. `hidden_states` (with `output_hidden_states`) are the embeddings and each layer's output."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if cache is None and use_cache:
            cache = RecurrentStateCache(len(self.layers))
        if cache is not None and (not isinstance(cache, RecurrentStateCache) or len(cache) != len(self.layers)):
            raise ValueError(
                f"`cache` must be a RecurrentStateCache with one state per model layer ({len(self.layers)}), got "
                f"{type(cache).__name__}: pass none (one is created), or the one a previous call returned."
            )
        seq_length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        mask_past_length = 0
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError(
                    f"`attention_mask` must be 2D (batch, sequence) for a recurrent model, got shape "
                    f"{tuple(attention_mask.shape)}."
                )
            if cache is not None and cache.get_state(0) is not None:
                mask_past_length = max(attention_mask.shape[1] - seq_length, 0)
        # Without past columns, a mask covers everything only if no state was carried in from an earlier call.
        covers_everything = mask_past_length > 0 or cache is None or cache.get_state(0) is None
        check_forward_inputs(
            self.config, input_ids, inputs_embeds, attention_mask, mask_past_length, covers_everything
        )

        tracing = torch.jit.is_tracing() or torch.compiler.is_exporting()
        if torch.compiler.is_exporting() and attention_mask is not None:
            raise NotImplementedError(
                "torch.export cannot trace the recurrent padding path (packed sequences have data-dependent sizes), "
                "so `torch.onnx.export(..., dynamo=True)` cannot export this model with an attention mask: export "
                "with `dynamo=False` (the TorchScript exporter), which keeps the padding path and dynamic axes."
            )
        if tracing and position_ids is not None:
            raise NotImplementedError("Packed documents (`position_ids`) cannot be exported: export without them.")
        padding_mask = None
        if attention_mask is not None:
            new_tokens_mask = attention_mask[:, mask_past_length:].bool()
            # Traced for export: always the padding path, which also runs unpadded rows right.
            if tracing or not new_tokens_mask.all():
                padding_mask = new_tokens_mask
        documents = None
        if position_ids is not None and seq_length > 1:
            inputs = input_ids if input_ids is not None else inputs_embeds
            real = padding_mask if padding_mask is not None else inputs.new_ones(inputs.shape[:2], dtype=torch.bool)
            documents = PackedDocuments.find(position_ids, real)

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        hidden_states = self.dropout(inputs_embeds)
        all_hidden_states = [hidden_states]
        layer_cache = cache
        if documents is not None:
            hidden_states, padding_mask = documents.split(hidden_states), documents.padding_mask
            layer_cache = documents.split_cache(cache) if cache is not None else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, padding_mask=padding_mask, cache=layer_cache, **kwargs)
            all_hidden_states.append(hidden_states)
        if documents is not None:
            all_hidden_states[1:] = [documents.join(states) for states in all_hidden_states[1:]]
            hidden_states = all_hidden_states[-1]
            if cache is not None:
                documents.join_cache(layer_cache, cache)
        if cache is not None:
            cache.seen_tokens += seq_length
        return output_with_cache(
            BaseModelOutputWithPast,
            cache,
            last_hidden_state=hidden_states,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
        )


class TinyRNNForCausalLM(TinyRNNPreTrainedModel, CheckedGeneration, GenerationMixin):
    """The recurrent layers with a language-modelling head (tied to the input embedding unless the config says
    otherwise). When `embedding_size != hidden_size`, `output_projection` maps the hidden state to the embedding width
    first, so the head keeps the embedding's shape whether or not it is tied."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TinyRNNConfig):
        super().__init__(config)
        self.model = TinyRNNModel(config)
        if config.embedding_size != config.hidden_size:
            self.output_projection = nn.Linear(config.hidden_size, config.embedding_size, bias=False)
        else:
            self.output_projection = nn.Identity()
        self.lm_head = nn.Linear(config.embedding_size, config.vocab_size, bias=False)
        self.post_init()

    @accepts_cache_argument
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: RecurrentStateCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""`labels` are the input ids (shifted inside the loss); -100 marks positions without loss.
        `logits_to_keep` computes logits for only the last N positions (or the given indices), as generation needs."""
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state[:, logits_positions(logits_to_keep)]
        logits = self.lm_head(self.output_projection(hidden_states))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return output_with_cache(
            CausalLMOutputWithPast, cache_of(outputs), loss=loss, logits=logits, hidden_states=outputs.hidden_states
        )


class TinyRNNForQuestionAnswering(GenericForQuestionAnswering, TinyRNNPreTrainedModel):
    """Extractive QA: start/end span logits over the tokens, trained with transformers' QA loss."""

    def __init__(self, config: TinyRNNConfig):
        # Built directly (not via AutoModel) so the class also loads as remote code without hf_tinylm installed.
        TinyRNNPreTrainedModel.__init__(self, config)
        self.model = TinyRNNModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()


__all__ = [
    "RecurrentStateCache",
    "TinyRNNPreTrainedModel",
    "TinyRNNModel",
    "TinyRNNForCausalLM",
    "TinyRNNForQuestionAnswering",
]
