"""`--hidden_optimizer muon`: Muon for the layers' weight matrices and AdamW for the rest compute what the two torch
optimizers compute on their own, follow the run's schedule, and survive a checkpoint round trip."""

import copy

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback, get_scheduler

from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM, TinyRNNConfig, TinyRNNForCausalLM, training
from hf_tinylm.optimization import MuonForHiddenMatrices, hidden_matrices
from tests import training_data


def tiny_model(arch: str):
    torch.manual_seed(0)
    if arch == "attention":
        return TinyAttentionForCausalLM(
            TinyAttentionConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
        )
    return TinyRNNForCausalLM(TinyRNNConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, cell="lstm"))


def loss_of(model) -> torch.Tensor:
    ids = torch.arange(24).remainder(50).view(2, 12)
    return model(ids, labels=ids).loss


@pytest.mark.parametrize("arch", ["attention", "rnn"])
def test_muon_trains_the_layers_matrices_and_adamw_the_rest_as_the_torch_optimizers_would(arch):
    model = tiny_model(arch)
    hidden = hidden_matrices(model)
    assert hidden and all(".layers." in name for name in hidden)
    assert "model.embed_tokens.weight" not in hidden and not any("norm" in name for name in hidden)

    reference = copy.deepcopy(model)
    named = dict(model.named_parameters())
    combined = MuonForHiddenMatrices(
        [named[name] for name in hidden],
        torch.optim.AdamW([p for name, p in named.items() if name not in hidden], lr=0.01),
        lr=0.01,
        weight_decay=0.1,
    )
    reference_named = dict(reference.named_parameters())
    muon = torch.optim.Muon(
        [reference_named[name] for name in hidden], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"
    )
    adamw = torch.optim.AdamW([p for name, p in reference_named.items() if name not in hidden], lr=0.01)
    for _ in range(3):
        loss_of(model).backward()
        combined.step()
        combined.zero_grad()
        loss_of(reference).backward()
        muon.step()
        adamw.step()
        muon.zero_grad()
        adamw.zero_grad()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter, reference_named[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(model.model.embed_tokens.weight, tiny_model(arch).model.embed_tokens.weight)


def test_schedules_that_read_the_optimizers_defaults_and_a_closure_work():
    model = tiny_model("rnn")
    named = dict(model.named_parameters())
    hidden = hidden_matrices(model)
    others = torch.optim.AdamW([p for name, p in named.items() if name not in hidden], lr=0.01)
    optimizer = MuonForHiddenMatrices([named[name] for name in hidden], others, lr=0.02, weight_decay=0.0)
    schedule = get_scheduler("polynomial", optimizer, num_warmup_steps=0, num_training_steps=4)  # reads defaults
    assert optimizer.step(lambda: loss_of(model).backward() or torch.tensor(1.0)).item() == 1.0  # closure gets grads
    schedule.step()
    # The logged rate (the first group's) is --learning_rate's schedule, Muon's follows its own peak.
    assert schedule.get_last_lr()[0] == pytest.approx(0.01 * 0.75 + 1e-7 * 0.25)
    assert optimizer.optimizers["muon"].param_groups[0]["lr"] == pytest.approx(0.02 * 0.75 + 1e-7 * 0.25, rel=1e-3)


def test_a_model_without_layers_is_refused_by_name():
    with pytest.raises(ValueError, match="found no trained weight matrix inside Linear's layers"):
        hidden_matrices(torch.nn.Linear(4, 4))


def test_a_schedule_reaches_both_optimizers_also_after_loading_a_checkpoint():
    model = tiny_model("attention")
    named = dict(model.named_parameters())
    hidden = hidden_matrices(model)

    def build():
        others = torch.optim.AdamW([p for name, p in named.items() if name not in hidden], lr=0.01)
        return MuonForHiddenMatrices([named[name] for name in hidden], others, lr=0.01, weight_decay=0.0)

    optimizer = build()
    loss_of(model).backward()
    optimizer.step()
    restored = build()
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as Accelerate and a resumed Trainer do
    for name in ("muon", "others"):
        loaded, saved = (o.optimizers[name].state_dict()["state"] for o in (restored, optimizer))
        assert loaded.keys() == saved.keys() and all(
            torch.equal(torch.as_tensor(loaded[p][key]), torch.as_tensor(saved[p][key]))
            for p in saved
            for key in saved[p]
        )
    schedule = LambdaLR(restored, lambda step: 0.5**step)
    for step in range(1, 4):
        loss_of(model).backward()
        restored.step()
        restored.zero_grad()
        schedule.step()
        for inner in restored.optimizers.values():
            assert [group["lr"] for group in inner.param_groups] == [0.01 * 0.5**step] * len(inner.param_groups)


class InnerRates(TrainerCallback):
    """The learning rate each of the two optimizers used at every step, next to the one Trainer's schedule set."""

    def __init__(self):
        self.rates = []

    def on_step_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        inner = optimizer.optimizer.optimizers
        self.rates.append(
            ({group["lr"] for o in inner.values() for group in o.param_groups}, lr_scheduler.get_last_lr())
        )


def test_train_py_with_muon_follows_its_schedule_in_both_optimizers(tmp_path):
    recorded = InnerRates()
    text = str(training_data.shakespeare_txt(tmp_path))
    with training_data.one_torch_thread():
        training.run(
            *training.parse_args(
                [
                    "--model_size", "tiny", "--vocab_size", "400", "--train_file", text, "--block_size", "32",
                    "--max_steps", "5", "--warmup_steps", "2", "--hidden_optimizer", "muon", "--eval_strategy", "no",
                    "--save_strategy", "no", "--report_to", "none", "--output_dir", str(tmp_path / "model"),
                ]
            ),
            callbacks=[recorded],
        )  # fmt: skip
    used = [rates for rates, _ in recorded.rates]
    assert all(len(rates) == 1 for rates in used)  # Muon and AdamW used one rate at each step...
    assert [rates.pop() for rates in used] == [scheduled[0] for _, scheduled in recorded.rates]  # ...the schedule's
    assert len({scheduled[0] for _, scheduled in recorded.rates}) == 5  # which changed at every step
    card = (tmp_path / "model" / "README.md").read_text()
    assert "Muon for the layers' weight matrices (learning rate 0.002), adamw_torch_fused for the rest" in card
