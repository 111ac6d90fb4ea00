"""Train an hf_tinylm model; `python train.py --help` lists every option.

Without arguments it trains a small self-attention language model on the CPython documentation that ships with
Python, reports validation perplexity, prints a sample and saves a Hub-ready folder under outputs/. The same command
runs distributed: `torchrun --nproc_per_node 2 train.py ...` or
`accelerate launch --config_file configs/accelerate_cpu_2proc.yaml train.py ...`.
"""

from hf_tinylm.training import main

if __name__ == "__main__":
    main()
