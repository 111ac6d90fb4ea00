"""A small local equivalent of transformers' model test mixins (which the wheel does not ship).

Subclass `CausalLMChecks` in a `Test...` class and implement `make_config(**overrides)`: every check below then runs
for that model family. Each check compares numbers against a second way of computing the same thing.
"""

import copy
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering, Trainer, TrainingArguments

from tests import training_data
from tests.helpers import run_without_hf_tinylm

VOCAB = 97
PAD = 0


def random_ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, length), generator=generator)


def left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return ids, mask


def step_by_step_argmax(model, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy decoding the slow way: a full forward pass without a cache for every new token."""
    with torch.no_grad():
        for _ in range(steps):
            next_id = model(ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
    return ids


class CausalLMChecks:
    """Checks every hf_tinylm causal LM must pass. `make_config` returns a tiny config with vocab_size=VOCAB."""

    def make_config(self, **overrides):
        raise NotImplementedError

    def make_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        config = self.make_config(vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=None, **overrides)
        return AutoModelForCausalLM.from_config(config).eval()

    # ---- forward -------------------------------------------------------------------------------------------

    def test_deterministic_and_batch_equals_single_rows(self):
        model = self.make_model()
        ids = random_ids(3, 12)
        with torch.no_grad():
            batched = model(ids).logits
            again = model(ids).logits
            rows = torch.cat([model(ids[i : i + 1]).logits for i in range(3)])
        torch.testing.assert_close(batched, again, rtol=0, atol=0)
        torch.testing.assert_close(batched, rows, rtol=1e-5, atol=1e-5)

    def test_inputs_embeds_equal_input_ids(self):
        model = self.make_model()
        ids = random_ids(2, 9)
        with torch.no_grad():
            from_ids = model(input_ids=ids).logits
            from_embeds = model(inputs_embeds=model.get_input_embeddings()(ids)).logits
        torch.testing.assert_close(from_ids, from_embeds, rtol=1e-6, atol=1e-6)

    def test_logits_to_keep_and_hidden_states(self):
        model = self.make_model()
        ids = random_ids(2, 8)
        with torch.no_grad():
            full = model(ids, output_hidden_states=True)
            last = model(ids, logits_to_keep=1).logits
        torch.testing.assert_close(last, full.logits[:, -1:], rtol=1e-6, atol=1e-6)
        assert len(full.hidden_states) == model.config.num_hidden_layers + 1
        assert all(h.shape[:2] == (2, 8) for h in full.hidden_states)

    def test_bad_inputs_raise_clear_errors(self):
        model = self.make_model()
        with pytest.raises(ValueError, match="outside the model's vocabulary"):
            model(torch.tensor([[1, VOCAB]]))
        with pytest.raises(ValueError, match="attention_mask"):
            model(random_ids(2, 5), attention_mask=torch.ones(2, 4, dtype=torch.long))
        with pytest.raises(ValueError, match="exactly one"):
            model()

    # ---- training ------------------------------------------------------------------------------------------

    def _gradients(self, model, ids):
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    def test_every_parameter_gets_a_gradient_also_with_checkpointing(self):
        model = self.make_model().train()
        ids = random_ids(2, 10)
        plain = self._gradients(model, ids)
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        assert set(plain) == trainable
        assert all(g.abs().sum() > 0 for g in plain.values())
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        assert model.is_activation_checkpointing
        checkpointed = self._gradients(model, ids)
        assert set(checkpointed) == set(plain)
        for name in plain:
            torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)

    def test_num_items_in_batch_scales_the_loss_for_gradient_accumulation(self):
        model = self.make_model()
        ids = random_ids(2, 10)
        with torch.no_grad():
            mean_loss = model(ids, labels=ids).loss
            summed_over_40 = model(ids, labels=ids, num_items_in_batch=torch.tensor(40)).loss
        tokens_with_loss = ids[:, 1:].numel()  # labels are shifted inside the loss
        torch.testing.assert_close(summed_over_40, mean_loss * tokens_with_loss / 40)

    def test_a_fresh_model_predicts_close_to_uniformly(self):
        """The initial weights spread the logits little (by sigma over the vocabulary), so on random tokens a fresh
        model's loss is ln(vocab) + about sigma**2 / 2, up to the sampling noise of the targets (sigma / sqrt(n))."""
        model = self.make_model()
        ids = random_ids(8, 32)
        with torch.no_grad():
            out = model(ids, labels=ids)
        sigma = out.logits[:, :-1].std(-1)
        assert sigma.max() < 0.5, "the initialisation spreads the logits widely"
        noise = 4 * sigma.mean().item() / math.sqrt(sigma.numel())
        assert out.loss.item() == pytest.approx(math.log(VOCAB) + (sigma**2 / 2).mean().item(), abs=noise)

    def test_trainer_reduces_loss_on_real_text(self, tmp_path):
        text = training_data.shakespeare(20_000)
        ids = torch.tensor([min(ord(c), VOCAB - 1) for c in text])
        blocks = ids[: len(ids) // 32 * 32].view(-1, 32)
        dataset = [{"input_ids": b, "labels": b} for b in blocks]
        model = self.make_model().train()
        args = TrainingArguments(
            output_dir=str(tmp_path),
            max_steps=30,
            per_device_train_batch_size=16,
            learning_rate=3e-3,
            logging_steps=5,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset)
        trainer.train()
        losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
        assert losses[-1] < 0.8 * losses[0], losses

    # ---- generation ----------------------------------------------------------------------------------------

    def test_cached_greedy_generation_equals_uncached_argmax(self):
        model = self.make_model()
        prompt = random_ids(2, 6)
        expected = step_by_step_argmax(model, prompt, 8)
        cached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
        assert torch.equal(cached, expected)
        assert torch.equal(uncached, expected)

    def test_continuing_from_a_returned_cache(self):
        model = self.make_model()
        ids = random_ids(1, 12)
        with torch.no_grad():
            full = model(ids).logits
            first = model(ids[:, :7], use_cache=True)
            rest = model(ids[:, 7:], cache=first.cache, use_cache=True).logits
        torch.testing.assert_close(rest, full[:, 7:], rtol=1e-5, atol=1e-5)

    def test_the_deprecated_past_key_values_name_still_passes_the_cache(self):
        """As in Llama until transformers 5.40: a warning, and the cache is used (not lost in **kwargs)."""
        model = self.make_model()
        ids = random_ids(1, 12)
        with torch.no_grad():
            full = model(ids).logits
            first = model(ids[:, :7], use_cache=True)
            with pytest.warns(FutureWarning, match="past_key_values"):
                rest = model(ids[:, 7:], past_key_values=first.cache, use_cache=True).logits
            base = model.base_model(ids[:, :7], use_cache=True)
            with pytest.warns(FutureWarning, match="past_key_values"):
                base_rest = model.base_model(ids[:, 7:], past_key_values=base.cache).last_hidden_state
            base_full = model.base_model(ids).last_hidden_state
        torch.testing.assert_close(rest, full[:, 7:], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(base_rest, base_full[:, 7:], rtol=1e-5, atol=1e-5)

    def test_left_padded_batch_generation_equals_one_by_one(self):
        model = self.make_model()
        rows = [random_ids(1, n, seed=n)[0] for n in (3, 7, 5)]
        ids, mask = left_pad(rows)
        batched = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
        for i, row in enumerate(rows):
            single = model.generate(row[None], max_new_tokens=6, do_sample=False, pad_token_id=PAD)
            assert torch.equal(batched[i, -6:], single[0, -6:]), f"row {i}"

    def test_sampling_with_a_seed_is_reproducible_and_beam_search_runs(self):
        model = self.make_model()
        prompt = random_ids(2, 5)
        runs = []
        for _ in range(2):
            torch.manual_seed(123)
            runs.append(model.generate(prompt, max_new_tokens=6, do_sample=True, top_k=20, temperature=0.9))
        assert torch.equal(runs[0], runs[1])
        beams = model.generate(prompt, max_new_tokens=6, num_beams=3, num_return_sequences=2, do_sample=False)
        assert beams.shape == (4, 11)
        # With one beam, beam search is greedy search: the cache reordering must not change anything.
        one_beam = model.generate(prompt, max_new_tokens=6, num_beams=1, do_sample=False)
        assert torch.equal(one_beam, step_by_step_argmax(model, prompt, 6))

    def test_beam_search_returns_the_best_of_all_continuations_and_its_score(self):
        """With num_beams = vocab**(steps - 1) beam search prunes no continuation, so it must return the most likely
        of all vocab**steps of them, scored here by one full forward pass each, with its length-penalised score."""
        vocab, steps, length_penalty = 6, 4, 2.0
        torch.manual_seed(0)
        # A wide initialisation: peaked next-token distributions, so the best continuation is often not greedy's.
        config = self.make_config(vocab_size=vocab, pad_token_id=PAD, eos_token_id=None, initializer_range=1.0)
        model = AutoModelForCausalLM.from_config(config).eval()
        prompts = torch.randint(1, vocab, (4, 3), generator=torch.Generator().manual_seed(0))
        out = model.generate(
            prompts, max_new_tokens=steps, num_beams=vocab ** (steps - 1), do_sample=False,
            length_penalty=length_penalty, output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
        greedy = model.generate(prompts, max_new_tokens=steps, do_sample=False)[:, -steps:]
        continuations = torch.cartesian_prod(*[torch.arange(vocab)] * steps)  # every one, (vocab**steps, steps)
        beats_greedy = []
        for row, prompt in enumerate(prompts):
            with torch.no_grad():
                logits = model(torch.cat([prompt.expand(len(continuations), -1), continuations], dim=1)).logits
            log_probs = logits[:, len(prompt) - 1 : -1].log_softmax(-1)
            totals = log_probs.gather(-1, continuations[..., None]).squeeze(-1).sum(-1)
            (best_total, second_total), (best, _) = totals.topk(2)
            assert best_total - second_total > 0.005, "no clear winner: float rounding could decide it"
            assert out.sequences[row, -steps:].tolist() == continuations[best].tolist(), f"row {row}"
            torch.testing.assert_close(out.sequences_scores[row], best_total / steps**length_penalty)
            beats_greedy.append(greedy[row].tolist() != continuations[best].tolist())
        assert any(beats_greedy), "every best continuation is greedy's: the check would not tell beam from greedy"

    def test_beam_search_with_cache_equals_without(self):
        model = self.make_model()
        prompt = random_ids(2, 5)
        kwargs = dict(max_new_tokens=6, num_beams=3, do_sample=False, early_stopping=True)
        assert torch.equal(
            model.generate(prompt, use_cache=True, **kwargs), model.generate(prompt, use_cache=False, **kwargs)
        )

    def test_generation_from_inputs_embeds(self):
        model = self.make_model()
        prompt = random_ids(1, 6)
        embeds = model.get_input_embeddings()(prompt)
        from_embeds = model.generate(inputs_embeds=embeds, max_new_tokens=5, do_sample=False)
        from_ids = model.generate(prompt, max_new_tokens=5, do_sample=False)
        assert torch.equal(from_embeds, from_ids[:, -5:])

    def test_static_cache_equals_dynamic_cache(self):
        model = self.make_model()
        prompt = random_ids(2, 6)
        dynamic = model.generate(prompt, max_new_tokens=7, do_sample=False)
        static = model.generate(prompt, max_new_tokens=7, do_sample=False, cache_implementation="static")
        assert torch.equal(dynamic, static)

    # ---- saving and loading --------------------------------------------------------------------------------

    def test_save_load_round_trip_is_exact_and_safetensors_only(self, tmp_path):
        model = self.make_model()
        model.save_pretrained(tmp_path)
        files = {p.name for p in tmp_path.iterdir()}
        assert "model.safetensors" in files
        assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
        assert "auto_map" in json.loads((tmp_path / "config.json").read_text())
        reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
        ids = random_ids(2, 9)
        with torch.no_grad():
            torch.testing.assert_close(reloaded(ids).logits, model(ids).logits, rtol=0, atol=0)
        if model.config.tie_word_embeddings:
            assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight

    def test_fresh_process_loads_with_trust_remote_code_without_hf_tinylm(self, tmp_path):
        model = self.make_model()
        folder = tmp_path / "model"
        model.save_pretrained(folder)
        prompt = random_ids(1, 6)
        expected = model.generate(prompt, max_new_tokens=8, do_sample=False)
        got = run_without_hf_tinylm(
            f"""
            import json, torch
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
            out = model.generate(torch.tensor({prompt.tolist()}), max_new_tokens=8, do_sample=False)
            print(json.dumps({{"tokens": out.tolist(), "module": type(model).__module__}}))
            """,
            cwd=tmp_path,
        )
        assert got["tokens"] == expected.tolist()
        assert got["module"].startswith("transformers_modules")

    def test_device_map_auto_loads(self, tmp_path):
        model = self.make_model()
        model.save_pretrained(tmp_path)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, device_map="auto")
        ids = random_ids(1, 5)
        with torch.no_grad():
            torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)

    # ---- question answering head ---------------------------------------------------------------------------

    def test_question_answering_head_shapes_loss_and_round_trip(self, tmp_path):
        torch.manual_seed(0)
        config = self.make_config(vocab_size=VOCAB, pad_token_id=PAD)
        model = AutoModelForQuestionAnswering.from_config(copy.deepcopy(config)).eval()
        ids = random_ids(2, 11)
        starts, ends = torch.tensor([2, 3]), torch.tensor([4, 9])
        out = model(ids, start_positions=starts, end_positions=ends)
        assert out.start_logits.shape == out.end_logits.shape == (2, 11)
        # The span loss by hand: the mean of the start's and the end's negative log-likelihood over the batch.
        start_nll = -out.start_logits.log_softmax(-1)[torch.arange(2), starts]
        end_nll = -out.end_logits.log_softmax(-1)[torch.arange(2), ends]
        assert out.loss.ndim == 0
        torch.testing.assert_close(out.loss, (start_nll.mean() + end_nll.mean()) / 2)
        out.loss.backward()
        # Its gradient for the head's weights by hand: (softmax - one-hot) / (2 * batch), times the hidden states.
        with torch.no_grad():
            hidden = model.base_model(ids).last_hidden_state
        error = torch.stack([out.start_logits.softmax(-1), out.end_logits.softmax(-1)], dim=-1).detach()
        error[torch.arange(2), starts, 0] -= 1
        error[torch.arange(2), ends, 1] -= 1
        expected_grad = torch.einsum("btk,bth->kh", error, hidden) / 4
        torch.testing.assert_close(model.qa_outputs.weight.grad, expected_grad, rtol=1e-4, atol=1e-6)
        model.save_pretrained(tmp_path)
        reloaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path).eval()
        with torch.no_grad():
            torch.testing.assert_close(reloaded(ids).start_logits, model(ids).start_logits, rtol=0, atol=0)
