"""Loading the model to explain from a command-line style specification.

``--model`` accepts:

* ``efficientnet_lite0``: the pretrained network installed with mlfem (with ``--weights
  imagenet``, read offline from the installed file, :mod:`mlfem.models.pretrained`);
* a torchvision architecture name (``resnet50``);
* ``timm:<name>``;
* a TorchScript file (``.pt``/``.pth``/``.ts`` made by ``torch.jit.save``), replayed
  through hookable modules (:mod:`mlfem.models.torchscript`), or a ``torch.export``
  program (``.pt2``, :mod:`mlfem.models.exported`);
* a classifier checkpoint written by ``mlfem train-classifier`` (``.safetensors`` with a
  ``.json`` sidecar): the architecture is rebuilt from the sidecar;
* ``package.module:factory``, a Python callable returning an ``nn.Module``.

``--weights`` accepts ``imagenet`` (the library's download; offline it fails with a
message saying which local file to pass instead) or a local state_dict file: ``.pth``/
``.pt`` read with ``torch.load(weights_only=True)`` (never unpickling arbitrary
objects) or ``.safetensors``.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlfem.models._loaded import LoadedModel, ModelLoadError
from mlfem.models.architectures import create_timm_model
from mlfem.models.exported import static_input_shape, unflatten_program
from mlfem.models.preprocessing import Preprocessing
from mlfem.models.pretrained import LITE0_PREPROCESSING, OFFLINE_TIMM_NAMES, imagenet_class_names
from mlfem.models.torchscript import ScriptReplayError, replay_script_module

__all__ = ["LoadedModel", "ModelLoadError", "load_model", "load_state_dict_file"]

_SCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit")
_STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def load_model(
    spec: str,
    weights: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LoadedModel:
    """Build the model named by ``spec``, load ``weights``, move it and set eval mode.

    Raises:
        ModelLoadError: unknown architecture, unreadable file, failed download,
            mismatched state_dict; the message names the argument and what to pass.
    """
    if not spec or not isinstance(spec, str):
        raise ModelLoadError("--model: expected an architecture name, timm:<name>, a file or module:factory")
    path = Path(spec)
    if path.suffix == ".pt2" or (path.suffix in _SCRIPT_SUFFIXES and path.exists()):
        loaded = _load_program_file(path, weights)
    elif path.suffix == ".safetensors" and path.is_file():
        loaded = _load_mlfem_checkpoint(path, weights)
    elif spec in OFFLINE_TIMM_NAMES:
        loaded = _load_timm(OFFLINE_TIMM_NAMES[spec], weights)
    elif spec.startswith("timm:"):
        loaded = _load_timm(spec.removeprefix("timm:"), weights)
    elif ":" in spec:
        loaded = _load_factory(spec, weights)
    else:
        if path.suffix in _SCRIPT_SUFFIXES + (".safetensors",):
            raise ModelLoadError(f"--model: file not found: {spec}")
        loaded = _load_torchvision(spec, weights)
    loaded.model = loaded.model.to(device=device, dtype=dtype).eval()
    if not loaded.trained:
        warnings.warn(
            f"{loaded.description} has random weights: its explanations carry no meaning. "
            "Pass --weights imagenet or --weights PATH to a trained checkpoint.",
            stacklevel=2,
        )
    return loaded


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict safely: safetensors, or ``torch.load(weights_only=True)``.

    A checkpoint that wraps the state_dict (``{"state_dict": ...}`` or ``{"model": ...}``)
    is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"--weights: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means the file is not usable
        raise ModelLoadError(
            f"--weights: could not read {path} as a state_dict ({type(error).__name__}: {error}). "
            "Expected a .safetensors file or a .pth/.pt file of tensors readable with "
            "torch.load(weights_only=True)."
        ) from error
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"--weights: {path} does not hold a state_dict (a mapping of names to tensors)")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _apply_state_dict(model: nn.Module, path: str, description: str) -> None:
    state = load_state_dict_file(path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5])
        unexpected = ", ".join(result.unexpected_keys[:5])
        raise ModelLoadError(
            f"--weights: {path} does not match {description}: "
            f"{len(result.missing_keys)} missing keys ({missing}) and "
            f"{len(result.unexpected_keys)} unexpected keys ({unexpected})"
        )


def _load_torchvision(name: str, weights: str | None) -> LoadedModel:
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(
            f"--model: {name!r} is not a torchvision architecture.{hint} Other forms: "
            "timm:<name>, a TorchScript file, or package.module:factory."
        )
    description = f"torchvision {name}"
    # A video model's pretrained weights are Kinetics-400's: "kinetics" names them, and
    # "imagenet" (the word every other model uses for "pretrained") loads them too.
    if weights == "kinetics" and name not in torchvision.models.list_models(module=torchvision.models.video):
        raise ModelLoadError(
            f"--weights kinetics: {name} is not a torchvision video model; pass --weights imagenet"
        )
    if weights in ("imagenet", "kinetics"):
        enum = torchvision.models.get_model_weights(name).DEFAULT
        try:
            model = torchvision.models.get_model(name, weights=enum)
        except Exception as error:  # noqa: BLE001 - URLError, OSError, RuntimeError...
            raise ModelLoadError(
                f"--weights imagenet: could not download the ImageNet weights of {name} "
                f"({type(error).__name__}: {error}). If this machine is offline, download "
                f"{enum.url} elsewhere and pass the file: --weights /path/to/{Path(enum.url).name}"
            ) from error
        transform = enum.transforms()
        preprocessing = Preprocessing(
            crop_size=int(_first(transform.crop_size)),
            resize_size=int(_first(transform.resize_size)),
            mean=tuple(transform.mean),
            std=tuple(transform.std),
            interpolation=str(transform.interpolation.value),
            source=f"torchvision {enum}",
        )
        names = tuple(enum.meta["categories"]) if "categories" in enum.meta else None
        return LoadedModel(model, preprocessing, f"{description} ({enum})", trained=True, class_names=names)
    model = torchvision.models.get_model(name, weights=None)
    if weights is not None:
        _apply_state_dict(model, weights, description)
        return LoadedModel(model, Preprocessing(), f"{description} ({weights})", trained=True)
    return LoadedModel(model, Preprocessing(), f"{description} (random init)", trained=False)


def _load_timm(name: str, weights: str | None) -> LoadedModel:
    try:
        import timm
    except ImportError as error:
        raise ModelLoadError(
            "--model timm:...: timm is not installed, although mlfem depends on it; "
            "reinstall the environment (uv sync, or pip install mlfem)"
        ) from error
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"--model: {name!r} is not a timm architecture.{hint}")
    description = f"timm {name}"
    if weights == "imagenet" and name in OFFLINE_TIMM_NAMES.values():
        return _load_installed_timm(name)
    if weights == "imagenet":
        try:
            model = create_timm_model(name, pretrained=True)
        except Exception as error:  # noqa: BLE001
            raise ModelLoadError(
                f"--weights imagenet: could not download the pretrained weights of timm:{name} "
                f"({type(error).__name__}: {error}). If this machine is offline, save the model's "
                "state_dict elsewhere and pass it: --weights /path/to/weights.safetensors"
            ) from error
        trained = True
    else:
        model = create_timm_model(name, pretrained=False)
        trained = weights is not None
        if weights is not None:
            _apply_state_dict(model, weights, description)
    config = timm.data.resolve_data_config({}, model=model)
    crop = int(config["input_size"][-1])
    preprocessing = Preprocessing(
        crop_size=crop,
        resize_size=int(round(crop / float(config.get("crop_pct", 0.875)))),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=str(config.get("interpolation", "bilinear")),
        source=f"timm data config of {name}",
    )
    suffix = "pretrained" if weights == "imagenet" else (weights or "random init")
    # timm's ImageNet-1k heads share torchvision's class order.
    names = imagenet_class_names() if weights == "imagenet" and getattr(model, "num_classes", None) == 1000 else None
    return LoadedModel(model, preprocessing, f"{description} ({suffix})", trained=trained, class_names=names)


def _load_installed_timm(name: str) -> LoadedModel:
    """A timm architecture whose ImageNet weights were installed with mlfem (no download)."""
    from mlfem.models.pretrained import PretrainedWeightsError, load_efficientnet_lite0

    try:
        model = load_efficientnet_lite0()
    except PretrainedWeightsError as error:
        raise ModelLoadError(f"--weights imagenet: {error}") from error
    return LoadedModel(
        model,
        LITE0_PREPROCESSING,
        f"timm {name} (ImageNet weights installed with mlfem)",
        trained=True,
        class_names=imagenet_class_names(),
    )


def _load_program_file(path: Path, weights: str | None) -> LoadedModel:
    if weights is not None:
        raise ModelLoadError(
            f"--weights: {path} already contains its weights; --weights applies to architecture names"
        )
    if not path.is_file():
        raise ModelLoadError(f"--model: file not found: {path}")
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as error:  # noqa: BLE001
            raise ModelLoadError(f"--model: could not read {path} as a torch.export program: {error}") from error
        # Unflattening restores the module hierarchy, so forward hooks work by name.
        model: nn.Module = unflatten_program(program)
        return LoadedModel(model, _program_preprocessing(path, program), f"torch.export program {path.name}", trained=True)
    try:
        script = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(
            f"--model: {path} is not a TorchScript file ({type(error).__name__}). A state_dict is "
            "passed as --model ARCH --weights FILE instead."
        ) from error
    # TorchScript takes no forward hooks: replay its code through hookable modules,
    # checked against the TorchScript output on a probe image.
    probe = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    try:
        model = replay_script_module(script, probe=probe)
    except ScriptReplayError as error:
        raise ModelLoadError(
            f"--model: {path}: {error}. Save the model with torch.export (.pt2) instead, or pass "
            "its Python factory (package.module:factory) with --weights."
        ) from error
    return LoadedModel(model, Preprocessing(), f"TorchScript {path.name}", trained=True)


def _program_preprocessing(path: Path, program: Any) -> Preprocessing:
    """ImageNet preprocessing, at the only size the program accepts if it has one."""
    static = static_input_shape(program)
    if static is None or len(static) != 4 or (static[2] is None and static[3] is None):
        return Preprocessing()
    height, width = static[2], static[3]
    if height is None or width is None or height != width:
        raise ModelLoadError(
            f"--model: {path} accepts only inputs of height {height} and width {width} "
            "(None: any), but mlfem feeds square images; export it with dynamic height and "
            "width (dynamic_shapes with torch.export.Dim.DYNAMIC) or with a square size"
        )
    # Keep torchvision's 256/224 ratio between the resize and the crop.
    return Preprocessing(crop_size=height, resize_size=round(height * 256 / 224))


def _load_mlfem_checkpoint(path: Path, weights: str | None) -> LoadedModel:
    """A checkpoint of ``mlfem train-classifier``: architecture, classes and preprocessing
    come from its JSON sidecar (see ``mlfem.training``)."""
    if weights is not None:
        raise ModelLoadError(f"--weights: {path} already contains its weights")
    from mlfem.models.checkpoint import CheckpointError, load_classifier

    try:
        return load_classifier(path)
    except CheckpointError as error:
        raise ModelLoadError(
            f"--model: {error}. A bare state_dict is passed as --model ARCH --weights FILE."
        ) from error


def _load_factory(spec: str, weights: str | None) -> LoadedModel:
    module_name, _, attribute = spec.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ModelLoadError(
            f"--model: cannot import module {module_name!r} of {spec!r} ({error}); expected "
            "package.module:factory importable from the current environment"
        ) from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ModelLoadError(f"--model: {module_name} has no callable {attribute!r}")
    model: Any = factory()
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--model: {spec}() returned {type(model).__name__}, not a torch.nn.Module")
    if weights == "imagenet":
        raise ModelLoadError("--weights imagenet applies to torchvision and timm models; pass a local file")
    if weights is not None:
        _apply_state_dict(model, weights, spec)
    preprocessing = getattr(model, "preprocessing", None)
    if not isinstance(preprocessing, Preprocessing):
        preprocessing = Preprocessing()
    trained = weights is not None or bool(getattr(model, "is_trained", False))
    return LoadedModel(model, preprocessing, f"{spec}()", trained=trained)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) else value
