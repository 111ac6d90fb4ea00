"""TRL's SFTTrainer on both families: plain text, conversations with assistant-only loss, padding-free packing.

Each check compares numbers: the loss TRL's padding-free batch gives equals the loss of its documents run one by one,
and assistant-only loss covers exactly the assistant's tokens.
"""

import pytest
import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from hf_tinylm import TinyAttentionForCausalLM, TinyRNNForCausalLM
from hf_tinylm.tokenization import train_tokenizer
from tests.test_tiny_attention import tiny_config as attention_config
from tests.test_tiny_rnn import tiny_config as rnn_config

TEXTS = ["the cat sat on the mat", "a dog ran", "birds sing in the morning light", "hello", "we eat bread and jam"]
CONVERSATIONS = [
    [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, friend"}],
    [{"role": "user", "content": "what sings?"}, {"role": "assistant", "content": "birds"}],
    [
        {"role": "user", "content": "and the cat?"},
        {"role": "assistant", "content": "it sat"},
        {"role": "user", "content": "where?"},
        {"role": "assistant", "content": "on the mat"},
    ],
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS + [m["content"] for c in CONVERSATIONS for m in c], "char", vocab_size=320)


def tiny_model(family, tokenizer):
    torch.manual_seed(0)
    sizes = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if family == "attention":
        return TinyAttentionForCausalLM(attention_config(max_position_embeddings=128, **sizes))
    return TinyRNNForCausalLM(rnn_config(cell=family, **sizes))


def trainer(model, tokenizer, dataset, tmp_path, **settings):
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=3,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataloader_num_workers=0,
        **settings,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def one_batch(sft):
    features = [sft.train_dataset[i] for i in range(3)]
    return sft.data_collator(features), features


def trains(sft):
    before = [p.detach().clone() for p in sft.model.parameters()]
    result = sft.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(b, p) for b, p in zip(before, sft.model.parameters()))


FAMILIES = ["attention", "lstm", "gru", "rnn"]


@pytest.mark.parametrize("family", ["attention", "lstm"])
def test_plain_text_loss_equals_the_model_loss_and_training_runs(family, tokenizer, tmp_path):
    model = tiny_model(family, tokenizer)
    sft = trainer(model, tokenizer, Dataset.from_dict({"text": TEXTS}), tmp_path)
    batch, features = one_batch(sft)
    model.eval()
    with torch.no_grad():
        batch_loss = model(**batch).loss
        per_row = [model(torch.tensor([f["input_ids"]]), labels=torch.tensor([f["input_ids"]])) for f in features]
    # The padded batch's loss is the token-weighted mean of each example's own loss: padding changes nothing.
    counts = torch.tensor([len(f["input_ids"]) - 1 for f in features], dtype=torch.float)
    expected = (torch.stack([r.loss for r in per_row]) * counts).sum() / counts.sum()
    torch.testing.assert_close(batch_loss, expected, rtol=1e-5, atol=1e-6)
    model.train()
    trains(sft)


@pytest.mark.parametrize("family", ["attention", "gru"])
def test_conversations_with_assistant_only_loss_train_on_the_assistant_turns_only(family, tokenizer, tmp_path):
    model = tiny_model(family, tokenizer)
    dataset = Dataset.from_dict({"messages": CONVERSATIONS})
    sft = trainer(model, tokenizer, dataset, tmp_path, assistant_only_loss=True)
    batch, features = one_batch(sft)
    for row, conversation in enumerate(CONVERSATIONS):
        trained = batch["labels"][row][batch["labels"][row] != -100]
        expected = "".join(m["content"] + tokenizer.eos_token for m in conversation if m["role"] == "assistant")
        assert tokenizer.decode(trained) == expected
    trains(sft)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("packing", [False, True])
def test_padding_free_batches_give_each_document_its_own_logits(family, packing, tokenizer, tmp_path):
    """A padding-free row packs several documents: its logits (and so its loss) must be each document's alone. The
    attention model keeps attention within each document, the recurrent one restarts its state at each."""
    model = tiny_model(family, tokenizer).double().eval()
    dataset = Dataset.from_dict({"text": TEXTS})
    settings = dict(packing=True, max_length=40) if packing else dict(padding_free=True, max_length=None)
    sft = trainer(model, tokenizer, dataset, tmp_path, **settings)
    rows = range(3) if not packing else range(len(sft.train_dataset))  # packed rows hold several texts each
    batch = sft.data_collator([sft.train_dataset[i] for i in rows])
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    positions = batch["position_ids"][0]
    starts = [*(positions == 0).nonzero().flatten().tolist(), len(positions)]
    assert len(starts) > 3  # several documents in the row
    with torch.no_grad():
        packed = model(**batch)
        alone = torch.cat([model(batch["input_ids"][:, a:b]).logits[0] for a, b in zip(starts, starts[1:])])
    torch.testing.assert_close(packed.logits[0], alone, rtol=0, atol=1e-10)
    model.float().train()
    trains(sft)
