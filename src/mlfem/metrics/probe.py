"""What a metric of faithfulness to the network is given: :class:`ModelProbe`.

Gaze metrics compare a map with a target map; the metrics of ``needs="model"`` and
``needs="explainer"`` (deletion, insertion, stability, the randomisation check) question the
network instead. The evaluation builds one probe per batch: the classifier, the batch's model
inputs, the class each map explains, a seed per image, and, for ``needs="explainer"``,
callables that explain other inputs (noisy copies) or the same inputs on a network whose
weights were re-initialised (:mod:`mlfem.metrics.randomisation`). This module only describes
that interface, so the metrics stay independent of the evaluation that implements it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["ModelProbe", "image_generator"]

#: (inputs (N, C, h, w), targets (N,)) -> each method's maps (N, h, w) in [0, 1].
Explain = Callable[[Tensor, Tensor], Mapping[str, Tensor]]


@dataclass
class ModelProbe:
    """The network side of one batch, for the metrics that score faithfulness to it.

    Attributes:
        model: the classifier, in eval mode (its device is the inputs' device).
        inputs: (B, C, h, w) model inputs, preprocessed as the maps were computed from them.
        targets: (B,) the class each image's maps explain (the trained model's top-1).
        seeds: one seed per image (:func:`mlfem.evaluation.scoring.image_seed`): random draws
            depend on the image, never on the batch it is in.
        multi_label: scores are sigmoid probabilities (else softmax).
        explain: for ``needs="explainer"``: the evaluated methods on other inputs.
        stages: names of the randomisation cascade's stages, top down.
        randomised: for the randomisation check: ``randomised(k)`` is every method's maps of
            ``inputs`` (explaining ``targets``) on the network whose stages ``0..k`` are
            re-initialised (:class:`mlfem.metrics.randomisation.Cascade`).
    """

    model: nn.Module
    inputs: Tensor
    targets: Tensor
    seeds: Sequence[int]
    multi_label: bool = False
    explain: Explain | None = None
    stages: Sequence[str] = field(default_factory=tuple)
    randomised: Callable[[int], Mapping[str, Tensor]] | None = None

    def __post_init__(self) -> None:
        if self.inputs.ndim != 4:
            raise ValueError(f"inputs must be (B, C, h, w), got {tuple(self.inputs.shape)}")
        batch = self.inputs.shape[0]
        if self.targets.shape != (batch,) or len(self.seeds) != batch:
            raise ValueError(
                f"{batch} inputs need {batch} targets and seeds, got "
                f"{tuple(self.targets.shape)} targets and {len(self.seeds)} seeds"
            )

    def scores(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """(N,) the probability of ``targets`` for ``inputs`` (no gradient)."""
        with torch.inference_mode():
            logits = self.model(inputs)
        if not isinstance(logits, Tensor) or logits.ndim != 2:
            raise ValueError("the classifier must return logits of shape (N, classes)")
        logits = logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)
        return probs.gather(1, targets.to(probs.device).long()[:, None])[:, 0]


def image_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with one image's seed: draws made on the CPU and then moved to
    the model's device are the same on every device."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator
