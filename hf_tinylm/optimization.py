"""`--hidden_optimizer muon`: `torch.optim.Muon` for the weight matrices inside the layers, the usual optimizer for
the rest.

Muon (momentum orthogonalised by Newton-Schulz iterations) is the modded-nanogpt speed record's choice for small
language models. It only suits 2-D weights inside the layers (attention and MLP projections, recurrent weights), so
the embeddings, the output head, norms and biases keep AdamW. With `adjust_lr_fn="match_rms_adamw"` Muon's updates
have AdamW's size, so one learning rate and one schedule serve both.
"""

import re

import torch

IN_A_LAYER = re.compile(r"(^|\.)layers\.\d+\.")


def hidden_matrices(model: torch.nn.Module) -> list[str]:
    """Names of the trained 2-D weights inside the model's layers (`layers.N....`): what Muon trains."""
    names = [
        name for name, p in model.named_parameters() if p.requires_grad and p.ndim == 2 and IN_A_LAYER.search(name)
    ]
    if not names:
        raise ValueError(
            f"--hidden_optimizer muon found no trained weight matrix inside {type(model).__name__}'s layers "
            "(`layers.N.`): train with the default --hidden_optimizer adamw."
        )
    return names


class MuonForHiddenMatrices(torch.optim.Optimizer):
    """Muon for `matrices`, and `others` (an optimizer built over the remaining parameters), stepped together as one
    optimizer, so that `Trainer`'s schedule (which sets each group's `lr`), gradient clipping and checkpoints
    (`state_dict`) treat the pair as any other optimizer."""

    def __init__(self, matrices: list, others: torch.optim.Optimizer, lr: float, weight_decay: float):
        muon = torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        # The other optimizer first: schedules that read `defaults["lr"]`, and Trainer's logged learning rate (the
        # first group's), are then --learning_rate's.
        self.optimizers = {"others": others, "muon": muon}
        # The same group dicts as the two optimizers', so that a schedule's `lr` reaches them.
        super().__init__(self._groups(), dict(others.defaults))

    def _groups(self) -> list[dict]:
        return [group for optimizer in self.optimizers.values() for group in optimizer.param_groups]

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers.values():
            optimizer.step()
        return loss

    def state_dict(self) -> dict:
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state_dict[name])
        self.param_groups = self._groups()  # loading replaced the optimizers' group dicts
