"""Training: fine-tuning the classifier to explain, and the learned NET fusion.

The flat public API::

    from mlfem.training import (ClassifierConfig, train_classifier, load_classifier,
                                FusionConfig, train_fusion, load_fusion_net, check_leakage)

    clf = train_classifier(ClassifierConfig(dataset="synthetic", out="runs/clf",
                                            dataset_options={"n": 2000}, image_size=128))
    loaded = load_classifier(clf.checkpoint)       # LoadedClassifier (a LoadedModel)
    net = train_fusion(FusionConfig(classifier=clf.checkpoint, out="runs/net"))
    MLFEM(loaded.model, fusion=f"net:{net.checkpoint}")
    # a NET for any model, on a dataset without class labels:
    train_fusion(FusionConfig(model="efficientnet_lite0", weights="imagenet", dataset="osie",
                              root="data/osie", out="runs/lite0-net"))
    MLFEM(load_model("efficientnet_lite0", "imagenet").model, fusion=f"net:{bundled_net_path()}")
    check_leakage("synthetic", test_ids, [clf.checkpoint, net.checkpoint])

Checkpoints are safetensors weights plus a JSON sidecar; nothing is ever unpickled.
See ``docs/training.md``. Reading them is not training: checkpoints and architectures live in
:mod:`mlfem.models.checkpoint` and :mod:`mlfem.models.architectures`, the NET operator in
:mod:`mlfem.fusion.net`; they are re-exported here. The old module paths
(``mlfem.training.checkpoint``, ``.architectures``, ``.fusion_net``) still import, with a
``DeprecationWarning``.
"""

from mlfem.fusion.net import (
    FusionMismatchError,
    FusionNet,
    NetFusion,
    load_fusion_net,
    save_fusion_net,
)
from mlfem.models.architectures import (
    SMALL_CNN,
    SmallCNN,
    rebuild_classifier,
    replace_head,
)
from mlfem.models.checkpoint import (
    CheckpointError,
    LoadedClassifier,
    load_classifier,
    model_fingerprint,
    read_metadata,
    save_classifier,
    state_fingerprint,
)
from mlfem.models.starting import build_classifier
from mlfem.training._state import TrainingInterrupted
from mlfem.training.augment import AUGMENTATIONS, Augmentation
from mlfem.training.bundled import bundled_net_path, export_net
from mlfem.training.classifier import train_classifier
from mlfem.training.classifier_config import ClassifierConfig, ClassifierRun
from mlfem.training.fusion_compare import compare_fusions, default_fusions
from mlfem.training.fusion_config import FusionConfig, FusionRun
from mlfem.training.leakage import (
    LeakageError,
    LeakageReport,
    LeakageWarning,
    check_leakage,
    find_overlap,
    seen_images,
)
from mlfem.training.map_cache import CacheMismatchError, MapCache
from mlfem.training.metrics import average_precision, classification_metrics
from mlfem.training.train_fusion import train_fusion

__all__ = [
    "AUGMENTATIONS",
    "SMALL_CNN",
    "Augmentation",
    "CacheMismatchError",
    "CheckpointError",
    "ClassifierConfig",
    "ClassifierRun",
    "FusionConfig",
    "FusionMismatchError",
    "FusionNet",
    "FusionRun",
    "LeakageError",
    "LeakageReport",
    "LeakageWarning",
    "LoadedClassifier",
    "MapCache",
    "NetFusion",
    "SmallCNN",
    "TrainingInterrupted",
    "average_precision",
    "build_classifier",
    "bundled_net_path",
    "check_leakage",
    "classification_metrics",
    "compare_fusions",
    "default_fusions",
    "export_net",
    "find_overlap",
    "load_classifier",
    "load_fusion_net",
    "model_fingerprint",
    "read_metadata",
    "rebuild_classifier",
    "replace_head",
    "save_classifier",
    "save_fusion_net",
    "seen_images",
    "state_fingerprint",
    "train_classifier",
    "train_fusion",
]


def __getattr__(name: str) -> object:
    # ``mlfem.training.checkpoint`` as an attribute (without importing it) worked while the
    # package imported its submodules; the moved ones now load, and warn, on first access.
    from mlfem.training._moved import MOVED

    if f"{__name__}.{name}" in MOVED:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
