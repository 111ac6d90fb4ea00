"""Run GGUF exports in llama.cpp itself and compare them with transformers (not part of the test suite).

    pip install llama-cpp-py-sync   # prebuilt llama.cpp (CPU), Python bindings over its C API; needs glibc >= 2.38
    python scripts/check_gguf_llama_cpp.py

For each tokenizer kind ("bpe", "char") and tied / untied heads, it trains a small tokenizer, saves a random attention
model (grouped-query attention, weights scaled so that context matters), exports it with `export_gguf`, loads the file
in llama.cpp and checks: token ids of a few texts (special tokens parsed, none added) equal transformers', the
detokenized text is the text, the logits of every prompt position agree (float32 weights and KV cache: atol 1e-4), and 12 greedy
tokens are the same. Prints one line per case; exits non-zero on a mismatch. Debian 12's glibc (2.36) is too old for
the published wheels; any llama.cpp build of the same C API loads through `LLAMA_CPP_LIB=/path/to/libllama.so`.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_tinylm.gguf_export import export_gguf  # noqa: E402
from tests.test_gguf import CORPUS, TEXTS, save_model  # noqa: E402


def llama_cpp_logits(llm, ids) -> np.ndarray:
    """llama.cpp's logits for every position of `ids`, from a fresh context state."""
    lib, ffi = llm._lib, llm._ffi
    llm._clear_context_state()
    batch = lib.llama_batch_init(len(ids), 0, 1)
    try:
        batch.n_tokens = len(ids)
        for index, token in enumerate(ids):
            batch.token[index], batch.pos[index], batch.n_seq_id[index] = token, index, 1
            batch.seq_id[index][0], batch.logits[index] = 0, 1
        if lib.llama_decode(llm._ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        n_vocab = llm.n_vocab
        return np.stack(
            [
                np.frombuffer(ffi.buffer(lib.llama_get_logits_ith(llm._ctx, i), 4 * n_vocab), dtype=np.float32)
                for i in range(len(ids))
            ]
        )
    finally:
        lib.llama_batch_free(batch)


def greedy(llm, ids, steps) -> list[int]:
    ids = list(ids)
    for _ in range(steps):  # re-evaluates the whole sequence each step: tiny models, and no cache state to trust
        ids.append(int(llama_cpp_logits(llm, ids)[-1].argmax()))
    return ids


def main() -> int:
    import llama_cpp_py_sync
    from transformers import AutoTokenizer

    from hf_tinylm.tokenization import train_tokenizer

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("bpe", "char"):
            tokenizer = train_tokenizer(CORPUS, kind, vocab_size=420 if kind == "bpe" else 320)
            for tie in (True, False):
                folder = Path(tmp) / f"{kind}-{'tied' if tie else 'untied'}"
                model = save_model(folder, tokenizer, tie=tie)
                tokenizer = AutoTokenizer.from_pretrained(folder)
                path = export_gguf(folder, folder.with_suffix(".gguf"))
                with llama_cpp_py_sync.Llama(
                    str(path), n_ctx=64, n_batch=64, n_threads=2, type_k="f32", type_v="f32"
                ) as llm:
                    problems = []
                    for text in TEXTS:
                        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
                        if llm.tokenize(text, add_special=False, parse_special=True) != ids:
                            problems.append(f"token ids of {text!r}")
                        if llm.detokenize(ids, remove_special=False, unparse_special=True) != text:
                            problems.append(f"detokenized {text!r}")
                    ids = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
                    with torch.no_grad():
                        expected = model(torch.tensor([ids])).logits[0].numpy()
                        hf_tokens = model.generate(
                            torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False
                        )[0].tolist()
                    max_diff = float(np.abs(llama_cpp_logits(llm, ids) - expected).max())
                    if max_diff > 1e-4:
                        problems.append(f"logits differ by {max_diff:.2e}")
                    if greedy(llm, ids, 12) != hf_tokens:
                        problems.append("greedy tokens")
                print(f"{folder.name}: {'OK' if not problems else 'FAILED ' + '; '.join(problems)} "
                      f"(max logit diff {max_diff:.2e}, {len(TEXTS)} texts, 12 greedy tokens)")  # fmt: skip
                failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
