"""The recurrent family: the shared model checks for each cell, plus what is specific to a recurrent state."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForQuestionAnswering, DynamicCache

from hf_tinylm import TinyRNNConfig, TinyRNNForCausalLM, TinyRNNForQuestionAnswering
from hf_tinylm.modeling_tiny_rnn import RecurrentStateCache, TinyRNNLayer
from tests.model_checks import PAD, VOCAB, CausalLMChecks, random_ids

CELLS = ("rnn", "lstm", "gru")


def tiny_config(**overrides) -> TinyRNNConfig:
    settings = dict(vocab_size=VOCAB, hidden_size=24, num_hidden_layers=2, cell="lstm", pad_token_id=PAD)
    settings.update(overrides)
    return TinyRNNConfig(**settings)


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float64, **overrides) -> TinyRNNForCausalLM:
    torch.manual_seed(seed)
    return TinyRNNForCausalLM(tiny_config(**overrides)).to(dtype).eval()


class TestTinyRNNModel(CausalLMChecks):
    """The whole shared suite, on the LSTM: the cell whose state has two parts (h and c)."""

    cell = "lstm"

    def make_config(self, **overrides):
        return tiny_config(**{"cell": self.cell, **overrides})


# The shared checks whose outcome depends on how a cell's state is stored and moved; the others (saving, loading,
# training, the QA head, input validation) run the same code for every cell.
STATE_DEPENDENT_CHECKS = (
    "test_every_parameter_gets_a_gradient_also_with_checkpointing",
    "test_cached_greedy_generation_equals_uncached_argmax",
    "test_continuing_from_a_returned_cache",
    "test_left_padded_batch_generation_equals_one_by_one",
    "test_sampling_with_a_seed_is_reproducible_and_beam_search_runs",
    "test_beam_search_returns_the_best_of_all_continuations_and_its_score",
    "test_beam_search_with_cache_equals_without",
    "test_generation_from_inputs_embeds",
    "test_static_cache_equals_dynamic_cache",
)


@pytest.mark.parametrize("check", STATE_DEPENDENT_CHECKS)
@pytest.mark.parametrize("cell", ("rnn", "gru"))
def test_state_dependent_checks_on_the_cells_with_one_state(cell, check):
    checks = TestTinyRNNModel()
    checks.cell = cell
    getattr(checks, check)()


def test_registered_with_auto_classes():
    config = AutoConfig.for_model("tiny_rnn", cell="gru", hidden_size=16)
    assert isinstance(config, TinyRNNConfig)
    assert isinstance(AutoModelForCausalLM.from_config(config), TinyRNNForCausalLM)
    assert isinstance(AutoModelForQuestionAnswering.from_config(config), TinyRNNForQuestionAnswering)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(cell="transformer"), "`cell` must be one of"),
        (dict(hidden_size=0), "`hidden_size` must be a positive integer"),
        (dict(vocab_size=-5), "`vocab_size` must be a positive integer"),
        (dict(num_hidden_layers=0), "`num_hidden_layers` must be a positive integer"),
        (dict(embedding_size=-1), "`embedding_size` must be a positive integer"),
        (dict(dropout=1.0), "`dropout` must be in"),
        (dict(dropout=-0.1), "`dropout` must be in"),
        (dict(pad_token_id=VOCAB), "`pad_token_id`"),
    ],
)
def test_invalid_config_values_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_the_cache_holds_one_state_per_layer_and_counts_the_positions_read():
    model = tiny_model(num_hidden_layers=3)
    ids = random_ids(2, 5)
    cache = model(ids, use_cache=True).cache
    assert isinstance(cache, RecurrentStateCache) and len(cache) == 3
    assert [tuple(cache.get_state(i).shape) for i in range(3)] == [(2, 2, 24)] * 3
    assert cache.get_seq_length() == 5
    model(ids[:, :1], cache=cache)
    assert cache.get_seq_length() == 6
    cache.reorder_cache(torch.tensor([1, 1]))
    assert torch.equal(cache.get_state(2)[0], cache.get_state(2)[1])
    cache.reset()
    assert cache.get_seq_length() == 0 and cache.get_state(0) is None
    with pytest.raises(ValueError, match="cannot be rolled back"):
        cache.crop(3)


# ---- the kernels ----------------------------------------------------------------------------------------------------


def reference_recurrence(cell, weights, inputs, state):
    """torch.nn's equations for one layer, written out one time step at a time. `state` is in the cache layout."""
    w_ih, w_hh, b_ih, b_hh = (weights[f"rnn.{name}_l0"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    hidden, cell_state = (state[:, 0], state[:, 1]) if cell == "lstm" else (state, None)
    outputs = []
    for x in inputs.unbind(dim=1):
        if cell == "rnn":
            hidden = torch.tanh(x @ w_ih.T + b_ih + hidden @ w_hh.T + b_hh)
        elif cell == "lstm":
            input_gate, forget_gate, candidate, output_gate = (x @ w_ih.T + b_ih + hidden @ w_hh.T + b_hh).chunk(4, -1)
            cell_state = torch.sigmoid(forget_gate) * cell_state + torch.sigmoid(input_gate) * torch.tanh(candidate)
            hidden = torch.sigmoid(output_gate) * torch.tanh(cell_state)
        else:
            reset_x, update_x, new_x = (x @ w_ih.T + b_ih).chunk(3, -1)
            reset_h, update_h, new_h = (hidden @ w_hh.T + b_hh).chunk(3, -1)
            reset, update = torch.sigmoid(reset_x + reset_h), torch.sigmoid(update_x + update_h)
            candidate = torch.tanh(new_x + reset * new_h)
            hidden = (1 - update) * candidate + update * hidden
        outputs.append(hidden)
    final = torch.stack((hidden, cell_state), dim=1) if cell == "lstm" else hidden
    return torch.stack(outputs, dim=1), final


@pytest.mark.parametrize("cell", CELLS)
def test_layer_equals_its_equations_and_the_torch_module(cell):
    torch.manual_seed(0)
    config = tiny_config(cell=cell, embedding_size=6, hidden_size=5, num_hidden_layers=1)
    layer = TinyRNNLayer(config, layer_idx=0).double().eval()
    inputs = torch.randn(3, 7, 6, dtype=torch.float64)
    state_shape = (3, 2, 5) if cell == "lstm" else (3, 5)
    initial_state = torch.randn(state_shape, dtype=torch.float64)
    cache = RecurrentStateCache(num_layers=1)
    cache.set_state(initial_state.clone(), layer_idx=0)

    with torch.no_grad():
        output = layer(inputs[:, :6], cache=cache)
        decoding_step_output = layer(inputs[:, 6:], cache=cache)  # one token: the single-step path
    expected_output, expected_state = reference_recurrence(cell, layer.state_dict(), inputs, initial_state)
    torch.testing.assert_close(output, expected_output[:, :6], rtol=0, atol=1e-6)
    torch.testing.assert_close(decoding_step_output, expected_output[:, 6:], rtol=0, atol=1e-6)
    torch.testing.assert_close(cache.get_state(0), expected_state, rtol=0, atol=1e-6)

    torch_module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](6, 5, batch_first=True)
    torch_module = torch_module.double()
    torch_module.load_state_dict({name.removeprefix("rnn."): p for name, p in layer.state_dict().items()})
    # torch.nn takes (layers, batch, hidden) states, and (h, c) for the LSTM; our cache keeps them batch first.
    if cell == "lstm":
        module_state = (initial_state[None, :, 0].contiguous(), initial_state[None, :, 1].contiguous())
    else:
        module_state = initial_state[None]
    with torch.no_grad():
        torch_output, _ = torch_module(inputs, module_state)
    torch.testing.assert_close(torch.cat([output, decoding_step_output], dim=1), torch_output, rtol=0, atol=1e-6)


# ---- padding and the state ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_padding_anywhere_never_touches_the_state(cell):
    """Left, right and mid-row padding, and a row of padding only: each row ends in its unpadded state."""
    model = tiny_model(cell=cell)
    rows = [random_ids(1, n, seed=n)[0] for n in (3, 5, 4)]
    ids = torch.full((4, 6), PAD)
    mask = torch.zeros(4, 6, dtype=torch.long)
    positions = [torch.tensor([3, 4, 5]), torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 2, 3, 5])]
    for i, (row, where) in enumerate(zip(rows, positions)):  # left-, right- and mid-padded; row 3 is all padding
        ids[i, where], mask[i, where] = row, 1
    prefix = random_ids(4, 2, seed=9)

    with torch.no_grad():
        batch_cache = model(prefix, use_cache=True).cache
        states_after_prefix = [batch_cache.get_state(layer_idx).clone() for layer_idx in range(2)]
        batch = model(ids, attention_mask=torch.cat([torch.ones_like(prefix), mask], 1), cache=batch_cache)
        for i, (row, where) in enumerate(zip(rows, positions)):
            single = model(torch.cat([prefix[i], row])[None], use_cache=True)
            torch.testing.assert_close(batch.logits[i, where], single.logits[0, 2:], rtol=0, atol=1e-12)
            for layer_idx in range(2):
                torch.testing.assert_close(
                    batch.cache.get_state(layer_idx)[i],
                    single.cache.get_state(layer_idx)[0],
                    rtol=0,
                    atol=1e-12,
                )
    for layer_idx in range(2):
        assert torch.equal(batch.cache.get_state(layer_idx)[3], states_after_prefix[layer_idx][3])


def test_right_padding_leaves_the_loss_and_the_question_answering_logits_unchanged():
    model = tiny_model(cell="gru")
    ids = random_ids(1, 6)
    padded = torch.cat([ids, torch.full((1, 3), PAD)], dim=1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 3)], dim=1).long()
    labels = padded.masked_fill(mask == 0, -100)
    with torch.no_grad():
        torch.testing.assert_close(
            model(padded, attention_mask=mask, labels=labels).loss, model(ids, labels=ids).loss, rtol=0, atol=1e-12
        )
    torch.manual_seed(0)
    qa_model = TinyRNNForQuestionAnswering(tiny_config(cell="gru")).double().eval()
    with torch.no_grad():
        padded_out, plain_out = qa_model(padded, attention_mask=mask), qa_model(ids)
    torch.testing.assert_close(padded_out.start_logits[:, :6], plain_out.start_logits, rtol=0, atol=1e-12)
    torch.testing.assert_close(padded_out.end_logits[:, :6], plain_out.end_logits, rtol=0, atol=1e-12)


def test_the_state_does_not_grow_with_the_context():
    """What makes each decoding step cost the same at any length: the cache holds one fixed-size state per layer."""
    model = tiny_model(cell="lstm")
    with torch.no_grad():
        short = model(random_ids(2, 4), use_cache=True).cache
        long = model(random_ids(2, 64), use_cache=True).cache
    for layer_idx in range(2):
        assert short.get_state(layer_idx).shape == long.get_state(layer_idx).shape == (2, 2, 24)


def test_reordering_the_cache_reorders_the_rows_it_continues():
    """What beam search relies on: reordering the cache is the same as having run the reordered batch."""
    model = tiny_model(cell="lstm")
    prompt, continuation = random_ids(3, 5), random_ids(3, 2, seed=1)
    beam_idx = torch.tensor([2, 0, 0])
    with torch.no_grad():
        cache = model(prompt, use_cache=True).cache
        cache.reorder_cache(beam_idx)
        reordered = model(continuation, cache=cache).logits
        expected = model(torch.cat([prompt[beam_idx], continuation], dim=1)).logits[:, 5:]
    torch.testing.assert_close(reordered, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("segment", [5, 1])  # the sequence kernel, and the single-step cell path
def test_backpropagating_through_a_carried_state_equals_the_whole_sequence(cell, batch, segment):
    """Training in segments that carry the state in the cache (truncated BPTT, kept attached) gives the gradients of
    the whole sequence: the cache's in-place update must not clobber what backward needs."""
    model = tiny_model(cell=cell).train()
    ids = random_ids(batch, 10)
    model(ids).logits.sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    cache, logits = None, []
    for start in range(0, 10, segment):
        output = model(ids[:, start : start + segment], cache=cache, use_cache=True)
        cache = output.cache
        logits.append(output.logits)
    torch.cat(logits, dim=1).sum().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-10, atol=1e-10, msg=name)


# ---- sizes, training, errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
def test_embedding_narrower_than_hidden_state_projects_back_before_the_head(tied, tmp_path):
    model = tiny_model(embedding_size=8, hidden_size=24, tie_word_embeddings=tied, dtype=torch.float32)
    assert model.output_projection.weight.shape == (8, 24)
    assert model.lm_head.weight.shape == (VOCAB, 8)
    assert (model.lm_head.weight is model.get_input_embeddings().weight) is tied
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = random_ids(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape == (2, 8)


def test_gradient_checkpointing_replays_the_same_dropout():
    model = tiny_model(cell="lstm", dropout=0.3).train()
    ids = random_ids(2, 10)

    def gradients():
        model.zero_grad()
        torch.manual_seed(7)
        model(ids, labels=ids).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = gradients()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    for checkpointed, expected in zip(gradients(), plain):
        torch.testing.assert_close(checkpointed, expected, rtol=0, atol=1e-12)


def test_a_cache_without_recurrent_state_layers_or_a_4d_mask_is_refused():
    model = tiny_model()
    ids = random_ids(1, 4)
    with pytest.raises(ValueError, match="must be a RecurrentStateCache with one state per model layer \\(2\\), got DynamicCache"):
        model(ids, cache=DynamicCache())
    with pytest.raises(ValueError, match="one state per model layer"):
        model(ids, cache=RecurrentStateCache(num_layers=3))
    with pytest.raises(ValueError, match="must be 2D"):
        model(ids, attention_mask=torch.ones(1, 1, 4, 4))
    cache = model(ids, use_cache=True).cache
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, cache=cache, attention_mask=torch.ones(1, 3, dtype=torch.long))
