"""The task registry: what each task answers, how train.py's arguments choose one, and how a saved config gives it
back, compared with the values the rest of the package relies on."""

import dataclasses

import pytest
from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering

from hf_tinylm import TinyAttentionConfig
from hf_tinylm.arguments import DataArguments
from hf_tinylm.pipelines_tinylm import PIPELINES
from hf_tinylm.task_formats import CONFIG_KEY, TASKS, task_name
from hf_tinylm.tasks import TASKS as TASK_CLASSES
from hf_tinylm.tasks import (
    ExtractiveQA,
    GenerativeQA,
    LanguageModelling,
    Summarization,
    Translation,
    task_of,
)

# train.py's --task/--qa_mode -> the task class, its registry name and the head that learns it.
CHOICES = [
    ({"task": "lm"}, LanguageModelling, "lm", AutoModelForCausalLM),
    ({"task": "translation"}, Translation, "translation", AutoModelForCausalLM),
    ({"task": "summarization"}, Summarization, "summarization", AutoModelForCausalLM),
    ({"task": "qa", "qa_mode": "generative"}, GenerativeQA, "qa-generative", AutoModelForCausalLM),
    ({"task": "qa", "qa_mode": "extractive"}, ExtractiveQA, "qa-extractive", AutoModelForQuestionAnswering),
]


def test_the_registry_holds_one_class_per_task_under_the_names_saved_configs_give():
    assert list(TASK_CLASSES) == ["lm", "translation", "summarization", "qa-generative", "qa-extractive"]
    assert {task.format for task in TASK_CLASSES.values()} == set(TASKS)  # every prompt format has its task
    for name, task_class in TASK_CLASSES.items():
        task = task_class()
        assert task.name == name
        # What a trained model records names this task again, without and with its head among the architectures.
        head = "TinyAttentionForQuestionAnswering" if not task.predicts_next_token else "TinyAttentionForCausalLM"
        assert task_name(task.settings()) == task_name(task.settings(), [head]) == name


@pytest.mark.parametrize(("flags", "task_class", "name", "auto_class"), CHOICES, ids=[c[2] for c in CHOICES])
def test_the_arguments_choose_the_task_and_hand_it_their_values(flags, task_class, name, auto_class):
    data_args = DataArguments(**flags, block_size=48, max_source_length=40, max_seq_length=96, source_lang="en")
    task = data_args.to_task()
    assert type(task) is task_class and task.name == name and task.auto_class is auto_class
    for field in dataclasses.fields(task):  # every setting is the flag of the same name
        assert getattr(task, field.name) == getattr(data_args, field.name), field.name
    assert task.pipeline == (PIPELINES[name][0] if name in PIPELINES else None)


def test_longest_sequences_and_fitting_them_to_a_saved_models_context():
    assert LanguageModelling(block_size=48).longest_sequence() == 48
    assert ExtractiveQA(max_seq_length=96).longest_sequence() == 96
    # A generated target may be longer than the trained one: the longer of the two counts.
    assert Translation(max_source_length=40, max_target_length=8, max_new_tokens=12).longest_sequence() == 52
    assert GenerativeQA(max_source_length=40, max_target_length=16).longest_sequence() == 56

    fitted, what = Summarization(max_source_length=200, max_target_length=24).fit_to_context(64, "saved")
    assert (fitted.max_source_length, fitted.longest_sequence(), what) == (
        40,
        64,
        "--max_source_length 40 (prompts longer than that are cut)",
    )
    fitted, what = LanguageModelling(block_size=128).fit_to_context(64, "saved")
    assert (fitted.block_size, what) == (64, "--block_size 64")
    fitted, what = ExtractiveQA(max_seq_length=384).fit_to_context(64, "saved")
    assert (fitted.max_seq_length, what) == (64, "--max_seq_length 64")
    with pytest.raises(ValueError, match="saved reads at most 16 tokens, not enough for targets of 16"):
        Translation(max_target_length=16).fit_to_context(16, "saved")


def test_a_saved_config_gives_back_the_task_with_the_settings_it_recorded():
    def config(settings, architectures):
        return TinyAttentionConfig(task_specific_params={CONFIG_KEY: settings}, architectures=architectures)

    task = task_of(config(Translation(source_lang="en", target_lang="de").settings(), ["TinyAttentionForCausalLM"]))
    assert task == Translation(source_lang="en", target_lang="de")
    task = task_of(config(ExtractiveQA(max_answer_length=7).settings(), ["TinyAttentionForQuestionAnswering"]))
    assert task == ExtractiveQA(max_answer_length=7)
    assert task_of(TinyAttentionConfig()) == LanguageModelling()
    # Settings written before the QA mode was recorded: the span head tells the two kinds of QA apart.
    assert type(task_of(config({"task": "qa"}, ["TinyAttentionForQuestionAnswering"]))) is ExtractiveQA
    assert type(task_of(config({"task": "qa"}, ["TinyAttentionForCausalLM"]))) is GenerativeQA


def test_each_generation_task_writes_its_prompt_from_its_own_columns():
    from datasets import Dataset, DatasetDict

    from hf_tinylm.task_formats import build_prompt
    from hf_tinylm.tokenization import train_tokenizer

    tokenizer = train_tokenizer(["A man rides a bike. Where is Mary? She is in the kitchen."], "char", 400)
    translation = Translation(source_lang="en", target_lang="de", max_source_length=200)
    qa = GenerativeQA(max_source_length=200)
    cases = [
        (translation, {"source": ["A man rides."]}, build_prompt("translation", "A man rides.", src_lang="en", tgt_lang="de")),
        (Summarization(), {"source": ["A man rides."]}, build_prompt("summarization", "A man rides.")),
        (qa, {"context": ["Mary is here."], "question": ["Where?"]}, build_prompt("qa", "Mary is here.", question="Where?")),
    ]  # fmt: skip
    for task, batch, prompt in cases:
        assert task.prompt_ids(batch, tokenizer) == [tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    rows = Dataset.from_dict({"en": ["A man."], "de": ["Ein Mann."]})
    examples = translation.examples(DatasetDict(train=rows), {}, {})
    assert examples["train"][0] == {"source": "A man.", "references": ["Ein Mann."]}
