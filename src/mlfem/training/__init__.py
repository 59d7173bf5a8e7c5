"""Training: fine-tuning the classifier to explain, and the learned NET fusion.

The flat public API::

    from mlfem.training import ClassifierConfig, train_classifier, load_classifier

    run = train_classifier(ClassifierConfig(dataset="synthetic", out="runs/clf",
                                            dataset_options={"n": 2000}, image_size=128))
    loaded = load_classifier(run.checkpoint)        # LoadedClassifier (a LoadedModel)
    loaded.model, loaded.preprocessing, loaded.metadata["train_ids"]

Checkpoints are safetensors weights plus a JSON sidecar; nothing is ever unpickled.
See ``docs/training.md``.
"""

from mlfem.training._state import TrainingInterrupted
from mlfem.training.architectures import SMALL_CNN, SmallCNN, build_classifier, rebuild_classifier, replace_head
from mlfem.training.augment import AUGMENTATIONS, Augmentation
from mlfem.training.checkpoint import (
    CheckpointError,
    LoadedClassifier,
    load_classifier,
    model_fingerprint,
    read_metadata,
    save_classifier,
    state_fingerprint,
)
from mlfem.training.classifier import ClassifierConfig, ClassifierRun, train_classifier
from mlfem.training.metrics import average_precision, classification_metrics

__all__ = [
    "AUGMENTATIONS",
    "SMALL_CNN",
    "Augmentation",
    "CheckpointError",
    "ClassifierConfig",
    "ClassifierRun",
    "LoadedClassifier",
    "SmallCNN",
    "TrainingInterrupted",
    "average_precision",
    "build_classifier",
    "classification_metrics",
    "load_classifier",
    "model_fingerprint",
    "read_metadata",
    "rebuild_classifier",
    "replace_head",
    "save_classifier",
    "state_fingerprint",
    "train_classifier",
]
