"""ONNX export of both families: onnxruntime reproduces PyTorch's logits on a left-padded batch of another shape.

The attention family exports with torch's default (torch.export-based, `dynamo=True`) exporter; the recurrent one
with the TorchScript exporter (`dynamo=False`), which keeps the packed-sequence padding path and dynamic axes (see
the README's "Exporting to ONNX").
"""

import warnings

import numpy as np
import onnxruntime
import pytest
import torch

from hf_tinylm import TinyAttentionForCausalLM
from tests.model_checks import PAD, left_pad, random_ids
from tests.test_tiny_attention import tiny_config as attention_config
from tests.test_tiny_rnn import tiny_model as tiny_rnn_model


class LogitsOnly(torch.nn.Module):
    """The model as an exporter sees it: (input_ids, attention_mask) -> logits, no cache."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def export(model, path, with_mask: bool, dynamo: bool):
    names = ["input_ids", "attention_mask"] if with_mask else ["input_ids"]
    ids, mask = left_pad([random_ids(1, n, seed=n)[0] for n in (5, 3)])
    args = (ids, mask) if with_mask else (ids,)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    if dynamo:
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        dynamic = {"dynamic_shapes": {name: {0: batch, 1: sequence} for name in names}}
    else:
        dynamic = {"dynamic_axes": {**axes, "logits": {0: "batch", 1: "sequence"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            LogitsOnly(model).eval(), args, str(path), input_names=names, output_names=["logits"], dynamo=dynamo,
            **dynamic,
        )
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def assert_onnx_matches(model, session, with_mask: bool):
    # Another batch size and length than exported with; left padding of 0, 2 and 5 tokens.
    ids, mask = left_pad([random_ids(1, n, seed=10 + n)[0] for n in (8, 6, 3)])
    feed = {"input_ids": ids.numpy()}
    if with_mask:
        feed["attention_mask"] = mask.numpy()
    (onnx_logits,) = session.run(None, feed)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask if with_mask else None).logits
    real = mask.bool() if with_mask else torch.ones_like(mask, dtype=torch.bool)
    assert onnx_logits.shape == tuple(expected.shape)
    np.testing.assert_allclose(onnx_logits[real.numpy()], expected[real].numpy(), rtol=0, atol=1e-4)


def tiny_attention():
    torch.manual_seed(0)
    return TinyAttentionForCausalLM(attention_config(pad_token_id=PAD)).eval()


def tiny_rnn(cell):
    return tiny_rnn_model(cell=cell, dtype=torch.float32)


@pytest.mark.parametrize("dynamo", [True, False])
def test_attention_model_exports_with_either_exporter(dynamo, tmp_path):
    model = tiny_attention()
    session = export(model, tmp_path / "model.onnx", with_mask=True, dynamo=dynamo)
    assert_onnx_matches(model, session, with_mask=True)


@pytest.mark.parametrize("with_mask", [True, False])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_model_exports_with_the_torchscript_exporter(cell, with_mask, tmp_path):
    model = tiny_rnn(cell)
    session = export(model, tmp_path / "model.onnx", with_mask=with_mask, dynamo=False)
    assert_onnx_matches(model, session, with_mask=with_mask)


def test_the_torch_export_exporter_names_the_exporter_to_use_for_a_masked_recurrent_model(tmp_path):
    with pytest.raises(Exception, match="dynamo=False"):
        export(tiny_rnn("gru"), tmp_path / "model.onnx", with_mask=True, dynamo=True)
