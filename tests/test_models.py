"""Model loading from specifications, safe weights, and preprocessing placement."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from PIL import Image

from mlfem import FEM, MLFEM
from mlfem.models import ModelLoadError, Preprocessing, load_model, load_state_dict_file
from tiny_models import TinyCNN


def quiet_load(*args, **kwargs):
    with pytest.warns(UserWarning, match="random weights"):
        return load_model(*args, **kwargs)


def test_factory_spec_and_untrained_warning() -> None:
    loaded = quiet_load("tiny_models:TinyCNN")
    assert isinstance(loaded.model, TinyCNN) and not loaded.model.training and not loaded.trained


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_state_dict_round_trip(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(3)
    source = TinyCNN().eval()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save({"state_dict": source.state_dict()}, path)
    loaded = load_model("tiny_models:TinyCNN", str(path))
    assert loaded.trained
    images = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded.model(images), source(images))
    torch.testing.assert_close(MLFEM(loaded.model)(images), MLFEM(source)(images))


class NotATensor:
    pass


def test_pickled_objects_are_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"weight": NotATensor()}, handle)
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_state_dict_file(path)


def test_mismatched_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelLoadError, match="does not match .*missing keys"):
        load_model("tiny_models:TinyCNN", str(path))


def test_bad_specs() -> None:
    with pytest.raises(ModelLoadError, match="not a torchvision architecture. Did you mean resnet50"):
        load_model("resnet5O")
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_module'"):
        load_model("no_such_module:factory")
    with pytest.raises(ModelLoadError, match="has no callable 'Nope'"):
        load_model("tiny_models:Nope")
    with pytest.raises(ModelLoadError, match="file not found"):
        load_model("missing/model.pt")
    with pytest.raises(ModelLoadError, match="--weights: file not found"):
        load_model("tiny_models:TinyCNN", "missing.safetensors")


def test_imagenet_download_failure_says_what_to_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights to find
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(ModelLoadError, match=r"could not download .*resnet18.*--weights /path/to/resnet18-"):
        load_model("resnet18", "imagenet")


def test_torchscript_file_is_replayed_through_hookable_modules(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    model = TinyCNN().eval()
    torch.jit.trace(model, torch.randn(1, 3, 16, 16)).save(str(path))
    loaded = load_model(str(path))
    images = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(loaded.model(images), model(images), rtol=0, atol=0)
    explainer = MLFEM(loaded.model)
    assert explainer.layer_names == MLFEM(model).layer_names  # the probe fallback
    torch.testing.assert_close(explainer(images), MLFEM(model)(images))
    # A bare TorchScript module still cannot be hooked: the error says what to do.
    with pytest.raises(TypeError, match="replay_script_module"):
        MLFEM(torch.jit.load(str(path)))


@pytest.mark.parametrize("make", ["script", "trace"])
def test_torchscript_resnet_keeps_automatic_layer_discovery(tmp_path: Path, make: str) -> None:
    # Scripted code has control flow and helper methods (ResNet._forward_impl); traced
    # code calls a shared ReLU through two methods. Both replay exactly, and the class
    # names (original_name) let discovery find the 8 basic blocks.
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18().eval()
    images = torch.randn(2, 3, 64, 64)
    script = torch.jit.script(model) if make == "script" else torch.jit.trace(model, images)
    path = tmp_path / "resnet18.pt"
    script.save(str(path))
    loaded = load_model(str(path))
    explainer = MLFEM(loaded.model)
    assert explainer.layer_names == MLFEM(model).layer_names and len(explainer.layer_names) == 8
    fused, layers = explainer(images, return_layers=True)
    expected_fused, expected_layers = MLFEM(model)(images, return_layers=True)
    torch.testing.assert_close(layers, expected_layers, rtol=0, atol=0)
    torch.testing.assert_close(fused, expected_fused, rtol=0, atol=0)


def test_torchscript_replay_follows_device_dtype_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    model = TinyCNN().eval()
    torch.jit.trace(model, torch.randn(1, 3, 16, 16)).save(str(path))
    replayed = load_model(str(path)).model.to(torch.float64)
    assert {p.dtype for p in replayed.parameters()} == {torch.float64}
    images = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(replayed(images), model.double()(images))
    replayed.train()
    assert replayed.training and replayed._script.training
    replayed.eval()
    assert not replayed._script.training


def test_torchscript_that_cannot_be_replayed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlfem.models import torchscript

    path = tmp_path / "tiny.pt"
    torch.jit.trace(TinyCNN().eval(), torch.randn(1, 3, 16, 16)).save(str(path))
    # As if the code used a construct the replay does not know.
    monkeypatch.setattr(torchscript, "_globals", lambda: {})
    with pytest.raises(ModelLoadError, match=r"tiny\.pt: replaying the TorchScript code failed.*torch\.export"):
        load_model(str(path))


def test_exported_program_with_explicit_layers(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt2"
    model = TinyCNN().eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 16, 16),)), str(path))
    loaded = load_model(str(path))
    images = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(
        MLFEM(loaded.model, layers="features.1,features.4")(images),
        MLFEM(model, layers="features.1,features.4")(images),
    )


def test_exported_resnet_keeps_automatic_layer_discovery(tmp_path: Path) -> None:
    # Unflattened modules are generic InterpreterModules; the class names recorded in
    # the program let discovery find the 8 basic blocks as on the original model.
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18().eval()
    images = torch.randn(2, 3, 64, 64)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (images,), dynamic_shapes=({0: batch},))
    path = tmp_path / "resnet18.pt2"
    torch.export.save(program, str(path))
    loaded = load_model(str(path))
    assert loaded.preprocessing.crop_size == 64  # the only size the program accepts
    explainer = MLFEM(loaded.model)
    assert explainer.layer_names == MLFEM(model).layer_names and len(explainer.layer_names) == 8
    torch.testing.assert_close(explainer(images[:1]), MLFEM(model)(images[:1]))


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_exported_program_with_a_static_batch_takes_any_batch(tmp_path: Path, batch: int) -> None:
    # Exported with default (static) shapes: it accepts batches of 2 only. FEM runs on
    # zero-padded batches of 2 and discovery probes with the example input's shape.
    model = TinyCNN().eval()
    path = tmp_path / "static.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(2, 3, 16, 16),)), str(path))
    loaded = load_model(str(path))
    images = torch.randn(batch, 3, 16, 16)
    for explainer_of in (lambda m: MLFEM(m), lambda m: MLFEM(m, fusion="max"), lambda m: FEM(m)):
        torch.testing.assert_close(explainer_of(loaded.model)(images), explainer_of(model)(images))
    _, layers = MLFEM(loaded.model)(images, return_layers=True)
    assert layers.shape == (batch, 2, 16, 16)
    logits = MLFEM(loaded.model).layer_maps(images).logits
    torch.testing.assert_close(logits, model(images))


def test_exported_program_with_a_non_square_static_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt2"
    torch.export.save(torch.export.export(TinyCNN().eval(), (torch.randn(1, 3, 16, 24),)), str(path))
    with pytest.raises(ModelLoadError, match=r"wide\.pt2 accepts only inputs of height 16 and width 24"):
        load_model(str(path))


def test_preprocessing_fits_and_placement() -> None:
    image = Image.new("RGB", (300, 200), (255, 0, 0))
    whole, placement = Preprocessing(crop_size=64)(image)
    assert whole.shape == (3, 64, 64)
    torch.testing.assert_close(whole[0], torch.full((64, 64), (1 - 0.485) / 0.229))
    assert placement.to_original(torch.rand(64, 64)).shape == (200, 300)

    cropped, placement = Preprocessing(crop_size=64, resize_size=80, fit="crop")(image)
    assert cropped.shape == (3, 64, 64)
    assert placement.resized == (80, 120) and placement.region == (8, 28, 64, 64)
    back = placement.to_original(torch.ones(64, 64))
    assert back.shape == (200, 300)
    # The model never saw the margins (left, right, top, bottom): nothing is attributed there.
    assert back[:, :40].max() == 0 and back[:15].max() == 0 and back[30:170, 150].min() > 0.99

    native, placement = Preprocessing(fit="none")(image)
    assert native.shape == (3, 200, 300) and placement.region == (0, 0, 200, 300)
    with pytest.raises(ValueError, match="fit must be one of"):
        Preprocessing().with_fit("stretch")  # type: ignore[arg-type]
