"""Base classes of the class-specific baseline explainers (Grad-CAM, IG, LRP, LIME, ...).

:class:`TargetExplainer` owns what every class-specific method needs and FEM does
not: resolving ``targets`` (default: the predicted top-1 class), checking them,
splitting a large batch into bounded chunks, moving data between the images' and
the model's devices, and putting the model back exactly as it was found — no
hook, no ``requires_grad`` change, no ``.grad`` left behind, even when the
forward pass raises.

:class:`GradientExplainer` adds the gradient-mode policy: methods that
back-propagate run under :func:`torch.enable_grad` (so they work inside a caller's
``torch.no_grad()``), but refuse to run under :func:`torch.inference_mode`, whose
tensors can never take part in autograd; the error says so instead of failing
deep inside autograd.

Subclasses implement :meth:`TargetExplainer._explain_batch`, which receives the
images already on the model's device (a detached copy, free to use with autograd)
and the targets as a ``(B,)`` int64 tensor, and returns maps ``(B, H, W)`` in [0, 1].
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mlfem.explainers.base import Explainer
from mlfem.extractor import explain_input_error, model_inputs
from mlfem.hooks import module_output_tensor

__all__ = [
    "GradientExplainer",
    "TargetExplainer",
    "TargetsLike",
    "capture_outputs",
    "check_logits",
    "resolve_targets",
    "seeded",
]

#: What ``targets`` may be: one class for every image (int or 0-d tensor), or one
#: class per image (a (B,) integer tensor or a sequence of ints).
TargetsLike = Tensor | int | Sequence[int] | None


def resolve_targets(targets: TargetsLike, batch: int) -> Tensor | None:
    """Check ``targets`` against a batch of ``batch`` images; return (B,) int64 on CPU.

    ``None`` stays ``None`` (the caller picks the top-1 class). Raises a ``ValueError``
    or ``TypeError`` that says what shape is expected.
    """
    if targets is None:
        return None
    if isinstance(targets, bool):
        raise TypeError("targets must be class indices (int, sequence of ints or integer tensor), got bool")
    if isinstance(targets, int):
        result = torch.full((batch,), targets, dtype=torch.int64)
    else:
        if not isinstance(targets, Tensor):
            try:
                targets = torch.as_tensor(list(targets))
            except (TypeError, ValueError, RuntimeError) as error:
                raise TypeError(
                    "targets must be None, an int, a sequence of ints or an integer tensor of shape "
                    f"(B,); got {type(targets).__name__}"
                ) from error
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"targets must hold integer class indices, got dtype {targets.dtype}")
        if targets.ndim == 0:
            result = targets.reshape(1).expand(batch)
        elif targets.ndim == 1 and targets.shape[0] == batch:
            result = targets
        else:
            raise ValueError(
                f"targets must be one class index per image, shape ({batch},) for this batch "
                f"(or a single int for all images); got shape {tuple(targets.shape)}. "
                "Multi-label models take one class per image too: explain each class in its own call."
            )
        result = result.detach().to("cpu", torch.int64)
    if result.numel() and int(result.min()) < 0:
        raise ValueError(f"targets must be non-negative class indices, got {result.tolist()}")
    return result.contiguous()


def check_logits(output: Any, targets: Tensor | None = None) -> Tensor:
    """The model's output as (B, K) logits; a clear error if it is not, or if a target
    is not a valid class index for it."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"the model returned {type(output).__name__}; class-specific explainers need a "
            "tensor of class scores (B, num_classes)"
        )
    if output.ndim != 2:
        raise ValueError(
            f"the model returned a tensor of shape {tuple(output.shape)}; class-specific "
            "explainers need class scores of shape (B, num_classes)"
        )
    if targets is not None and targets.numel() and int(targets.max()) >= output.shape[1]:
        raise ValueError(
            f"target class {int(targets.max())} is out of range: the model has "
            f"{output.shape[1]} classes (valid targets are 0..{output.shape[1] - 1})"
        )
    return output


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with the global RNGs seeded with ``seed``, then restore them.

    Captum's sampling methods (SmoothGrad noise, LIME perturbations) draw from the
    global generator; forking it makes them reproducible without disturbing the
    caller's random stream. ``seed=None`` leaves the global RNG alone.
    """
    if seed is None:
        yield
        return
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def capture_outputs(
    model: nn.Module, names: Sequence[str], *, start_graph: bool = False
) -> Iterator[dict[str, Tensor]]:
    """Record the output tensor of each named submodule during the block.

    Yields a dict filled as the modules run. A module that runs twice in one forward
    pass is an error (its output is ambiguous). When the module computes in place
    (``inplace=True``, e.g. a ReLU), the hook hands a copy to the rest of the network,
    so that later in-place operations cannot overwrite the recorded tensor.

    With ``start_graph=True`` the caller runs the forward pass under
    ``torch.no_grad()``: the first recorded output that is not yet part of an autograd
    graph is replaced by a leaf tensor that requires grad, and gradients are enabled
    for the rest of the forward pass. Nothing upstream of the explained layers is
    recorded for backward, so a Grad-CAM on the last block needs about the memory of a
    plain forward pass instead of keeping every activation of the network; the
    gradients with respect to the recorded outputs are unchanged.

    Every hook is removed, and the grad mode restored, on exit — also when the
    forward pass raises.
    """
    captured: dict[str, Tensor] = {}
    handles = []
    grad_mode = torch.is_grad_enabled()

    def make_hook(name: str) -> Callable[..., Any]:
        def hook(module: nn.Module, inputs: object, output: object) -> Any:
            if name in captured:
                raise RuntimeError(
                    f"layer {name!r} ran more than once in one forward pass, so it has no single "
                    "output to explain; choose the block that contains it instead"
                )
            tensor = module_output_tensor(name, output)
            if start_graph and not tensor.requires_grad:
                leaf = tensor.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
                captured[name] = leaf
                # The network continues from a copy, so that in-place operations
                # downstream never touch the leaf.
                return _replace_output(output, leaf.clone())
            captured[name] = tensor
            if getattr(module, "inplace", False) is True:
                return _replace_output(output, tensor.clone())
            return None

        return hook

    try:
        for name in names:
            module = model.get_submodule(name)
            handles.append(module.register_forward_hook(make_hook(name)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
        torch.set_grad_enabled(grad_mode)


def _replace_output(output: object, tensor: Tensor) -> object:
    """``output`` with its tensor (the first element of a tuple or list) replaced."""
    if isinstance(output, Tensor):
        return tensor
    if isinstance(output, tuple):
        return (tensor, *output[1:])
    if isinstance(output, list):
        return [tensor, *output[1:]]
    return output  # pragma: no cover - module_output_tensor already rejected it


class _ModelStateGuard:
    """Snapshot of the parameters' ``requires_grad`` flags and ``.grad`` tensors.

    Restoring puts back exactly what was there (a user's own accumulated gradient
    included), whatever the explanation code or a third-party library did.
    """

    def __init__(self, model: nn.Module) -> None:
        self._state = [(p, p.requires_grad, p.grad) for p in model.parameters()]

    def restore(self) -> None:
        for parameter, requires_grad, grad in self._state:
            if parameter.requires_grad != requires_grad:
                parameter.requires_grad_(requires_grad)
            if parameter.grad is not grad:
                parameter.grad = grad


class TargetExplainer(Explainer):
    """Base of class-specific explainers: targets, batching, devices and cleanup.

    Args:
        model: a classifier returning logits (B, num_classes), in eval mode.
        max_batch_size: explain at most this many images per internal call (bounds
            memory for large batches); ``None`` processes the batch at once.
    """

    class_specific = True
    #: Whether the method back-propagates (and therefore cannot run in inference mode).
    needs_gradients: bool = False

    def __init__(self, model: nn.Module, max_batch_size: int | None = None) -> None:
        super().__init__(model)
        if max_batch_size is not None and (not isinstance(max_batch_size, int) or max_batch_size < 1):
            raise ValueError(f"max_batch_size must be a positive int or None, got {max_batch_size!r}")
        self.max_batch_size = max_batch_size

    def explain(self, images: Tensor, targets: TargetsLike = None) -> Tensor:
        """Saliency maps (B, H, W) in [0, 1] for ``images`` (B, C, H, W).

        Args:
            images: a floating batch, normalised as the model expects.
            targets: the class to explain for each image: ``None`` for the model's
                top-1 prediction, an int for all images, or a (B,) integer tensor /
                sequence. Multi-label models take one class per image as well.

        Returns:
            Maps on ``images.device``, float32 (float64 for float64 images).
        """
        self.check_images(images)
        # (B, H, W) maps of images; (B, T, H, W) of clips (B, C, T, H, W), for the methods
        # that support them (Grad-CAM and its family).
        batch, spatial = images.shape[0], tuple(images.shape[2:])
        target_indices = resolve_targets(targets, batch)
        self._check_grad_mode()
        device = self.model_device
        out_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        step = batch if self.max_batch_size is None else self.max_batch_size
        guard = _ModelStateGuard(self.model)
        chunks = []
        try:
            for start in range(0, batch, step):
                # A detached copy: the caller's tensor never gets requires_grad or a .grad,
                # and in-place operations of the model cannot reach it.
                inputs = model_inputs(images[start : start + step].detach(), self.model).clone()
                chunk_targets = None if target_indices is None else target_indices[start : start + step].to(device)
                with self._grad_context():
                    try:
                        maps = self._explain_batch(inputs, chunk_targets)
                    except RuntimeError as error:
                        clearer = explain_input_error(images, self.model, error)
                        if clearer is None:
                            raise
                        raise clearer from error
                chunks.append(maps.detach())
        finally:
            guard.restore()
        maps = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
        expected = (batch, *spatial)
        if tuple(maps.shape) != expected:  # pragma: no cover - a bug in a subclass
            raise RuntimeError(f"{type(self).__name__} produced maps of shape {tuple(maps.shape)}, expected {expected}")
        # Cloning outside inference mode gives ordinary tensors the caller may modify.
        return maps.to(images.device, out_dtype).clone()

    def __call__(self, images: Tensor, targets: TargetsLike = None) -> Tensor:
        return self.explain(images, targets)

    @abstractmethod
    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        """Maps (B, H, W) in [0, 1] for ``inputs`` on the model's device.

        ``targets`` is a (B,) int64 tensor on the same device, or ``None`` for top-1.
        """

    # Helpers ------------------------------------------------------------------------

    def _check_grad_mode(self) -> None:
        if self.needs_gradients and torch.is_inference_mode_enabled():
            raise RuntimeError(
                f"{type(self).__name__} back-propagates gradients and cannot run under "
                "torch.inference_mode(); call it outside that block (torch.no_grad() is fine, "
                "gradients are enabled locally)"
            )

    def _grad_context(self) -> contextlib.AbstractContextManager[Any]:
        return torch.enable_grad() if self.needs_gradients else torch.no_grad()

    def _model_forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """Run the model and check its output (and ``targets``) as (B, K) logits."""
        return check_logits(self.model(inputs), targets)

    def _top1_targets(self, inputs: Tensor) -> Tensor:
        """The predicted class of each image: one extra forward pass without autograd."""
        with torch.inference_mode():
            logits = self._model_forward(inputs)
            top1 = logits.argmax(dim=1)
        return top1.clone()

    def _targets_or_top1(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        return self._top1_targets(inputs) if targets is None else targets

    def _checked_forward(self, targets: Tensor) -> Callable[..., Tensor]:
        """A forward function for captum that validates the output and target range."""

        def forward(*args: Any, **kwargs: Any) -> Tensor:
            return check_logits(self.model(*args, **kwargs), targets)

        return forward


class GradientExplainer(TargetExplainer):
    """A :class:`TargetExplainer` whose method back-propagates through the model.

    Gradient methods run under :func:`torch.enable_grad` and take gradients with
    :func:`torch.autograd.grad` with respect to the input or to recorded
    activations only, so parameters never accumulate a ``.grad``. They raise a
    ``RuntimeError`` under :func:`torch.inference_mode`.
    """

    needs_gradients = True
