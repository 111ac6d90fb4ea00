"""The hf_tinylm recurrent language model: stacked Elman RNN, LSTM or GRU layers on torch.nn's fused kernels.

Training and prefill run whole sequences through `nn.RNN` / `nn.LSTM` / `nn.GRU`, never a Python loop over time steps;
a one-token decoding step runs the matching cell function. Each layer's final state (h, and c for the LSTM) lives in transformers' `Cache` as the recurrent state of a
linear-attention layer, batch first, so a decoding step costs the same at any context length and beam search reorders
the state like any other cache. Padding never reaches the state: each row's real tokens are moved to the front and
packed, so a left-, right- or mid-padded row ends in exactly the state of its unpadded self.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GenericForQuestionAnswering, GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_tiny_rnn import TinyRNNConfig
from .tinylm_common import HubReadyMixin, check_model_inputs

RECURRENT_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# The same equations for a single time step, as `nn.RNNCell` / `nn.LSTMCell` / `nn.GRUCell` run them.
SINGLE_STEP_FUNCTIONS = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}


def cached_layer_state(cache: Cache, layer_idx: int) -> torch.Tensor | None:
    """The state `cache` holds for layer `layer_idx`, or None before that layer first stored one.

    `Cache.get_recurrent_state` only reports the state of layers that also stored a convolution state (as the SSMs in
    transformers do), so the layer's slot is read directly. After `cache.reset()` the slot holds zeros, which is also
    where a recurrent layer starts.
    """
    layer = cache.layers[layer_idx]
    return layer.recurrent_states[0] if layer.is_recurrent_states_initialized[0] else None


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
        state = cached_layer_state(cache, self.layer_idx) if cache is not None else None
        if state is not None and state.requires_grad:
            # Backpropagating through a state carried over from an earlier call (truncated BPTT): the cache overwrites
            # its buffer in place below, so this step reads a copy that stays as backward needs it.
            state = state.clone()
        if padding_mask is not None:
            output, new_state = self._forward_skipping_padding(hidden_states, state, padding_mask)
        elif hidden_states.shape[1] == 1:
            output, new_state = self._forward_one_step(hidden_states, state)
        else:
            output, final_state = self.rnn(hidden_states, self._to_module_state(state))
            new_state = self._to_cache_state(final_state)
        if cache is not None:
            cache.update_recurrent_state(new_state, self.layer_idx)
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
        lengths = padding_mask.sum(dim=1)
        order = torch.argsort(padding_mask.to(torch.int8), dim=1, descending=True, stable=True)
        front_loaded = hidden_states.gather(1, order.unsqueeze(-1).expand_as(hidden_states))
        packed = pack_padded_sequence(front_loaded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        packed_output, final_state = self.rnn(packed, self._to_module_state(state))
        front_output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=seq_length)
        back_in_place = torch.argsort(order, dim=1).unsqueeze(-1).expand_as(front_output)
        output = front_output.gather(1, back_in_place) * padding_mask.unsqueeze(-1)

        new_state = self._to_cache_state(final_state)
        previous_state = state if state is not None else torch.zeros_like(new_state)
        has_tokens = (lengths > 0).view(-1, *[1] * (new_state.dim() - 1))
        return output, torch.where(has_tokens, new_state, previous_state)

    def _forward_one_step(
        self, hidden_states: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoding step as the cell function: two small matmuls. The sequence kernel computes the same, but on CPU
        its oneDNN LSTM path pays a set-up cost per call many times the cost of one step."""
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
    _can_record_outputs = {"hidden_states": TinyRNNLayer}

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

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""`attention_mask` (batch, seq) is 1 at tokens and 0 at padding, which never touches the state. When `cache`
        already holds a state, the mask may also cover the cached tokens (as `generate()` passes it): only its last
        `seq` columns are read, the past being folded into the state. `use_cache` defaults to the config's outside
        training."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if cache is None and use_cache:
            cache = DynamicCache(config=self.config)
        if cache is not None and (len(cache.layers) != len(self.layers) or not all(cache.is_linear)):
            raise ValueError(
                "`cache` must hold one recurrent-state layer per model layer: build it with "
                "`DynamicCache(config=model.config)` or take the one a previous call returned."
            )
        seq_length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        mask_past_length = 0
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError(
                    f"`attention_mask` must be 2D (batch, sequence) for a recurrent model, got shape "
                    f"{tuple(attention_mask.shape)}."
                )
            if cache is not None and cached_layer_state(cache, 0) is not None:
                mask_past_length = max(attention_mask.shape[1] - seq_length, 0)
        check_model_inputs(self.config, input_ids, inputs_embeds, attention_mask, mask_past_length)

        padding_mask = None
        if attention_mask is not None:
            new_tokens_mask = attention_mask[:, mask_past_length:].bool()
            if not new_tokens_mask.all():
                padding_mask = new_tokens_mask

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        hidden_states = self.dropout(inputs_embeds)
        for layer in self.layers:
            hidden_states = layer(hidden_states, padding_mask=padding_mask, cache=cache, **kwargs)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache)


class TinyRNNForCausalLM(TinyRNNPreTrainedModel, GenerationMixin):
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

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
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
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(self.output_projection(hidden_states))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states
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
    "TinyRNNPreTrainedModel",
    "TinyRNNModel",
    "TinyRNNForCausalLM",
    "TinyRNNForQuestionAnswering",
]
