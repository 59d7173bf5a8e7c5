"""The NET fusion that ships with mlfem, and how a trained NET is turned into such a file.

``src/mlfem/resources/nets/efficientnet_lite0-osie.safetensors`` (+ its ``.json`` record) is
a NET trained by ``scripts/train_bundled_net.sh`` for ``--model efficientnet_lite0 --weights
imagenet`` (the ImageNet network installed with mlfem) on the OSIE training pool (images
1041–1600; never on the 1001–1040 test sample). Its record lists the image ids it trained and
validated on, the split, the epochs, its validation PCC and that of the algebraic fusions on
the same maps, and the command that made it (docs/training.md)::

    from mlfem.training import bundled_net_path
    MLFEM(load_model("efficientnet_lite0", "imagenet").model, fusion=f"net:{bundled_net_path()}")
    # mlfem explain IMAGES --fusion net:$(python -c "import mlfem.training as t; print(t.bundled_net_path())")

Like any NET, it refuses the maps of another model (another architecture, or other weights).
:func:`bundled_net_path` lives in :mod:`mlfem.fusion.net` (``net:bundled`` resolves it there)
and is re-exported here.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlfem._atomic import replacing
from mlfem.fusion.net import BUNDLED_NETS, bundled_net_path
from mlfem.models.checkpoint import (
    NET_FORMAT,
    read_checkpoint,
    sidecar_path,
    weights_path,
    write_json_atomic,
)

__all__ = ["BUNDLED_NETS", "bundled_net_path", "export_net"]


def export_net(
    source: str | Path,
    destination: str | Path,
    extra: Mapping[str, Any] | None = None,
    relative_to: str | Path | None = None,
) -> Path:
    """Copy a trained NET to ``destination`` (a ``.safetensors`` path) with its record.

    The sidecar is rewritten for the new name (``weights_file``), ``extra`` is added to it
    (e.g. the command that trained it), and absolute paths under ``relative_to`` or beside
    it (under its parent folder) are made relative to it, so a shipped record does not carry the training machine's folders. The
    copy is checked by reading it back (format and fingerprint).
    """
    _, metadata = read_checkpoint(source, NET_FORMAT)
    destination = weights_path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with replacing(destination) as tmp:
        shutil.copyfile(weights_path(source), tmp)
    metadata = {**metadata, **dict(extra or {}), "weights_file": destination.name}
    if relative_to is not None:
        metadata = _relative(metadata, str(Path(relative_to).resolve()))
    write_json_atomic(sidecar_path(destination), metadata)
    read_checkpoint(destination, NET_FORMAT)
    return destination


def _relative(value: Any, root: str) -> Any:
    """Absolute paths under ``root`` or beside it (under its parent) made relative to it."""
    if isinstance(value, dict):
        return {key: _relative(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [_relative(item, root) for item in value]
    parent = str(Path(root).parent)
    if isinstance(value, str) and (value == root or value.startswith(parent.rstrip("/") + "/")):
        return os.path.relpath(value, root)
    return value


def main(argv: list[str] | None = None) -> int:
    """Command line of :func:`export_net` (``scripts/train_bundled_net.sh`` calls it):
    ``SOURCE DEST ROOT EXTRA_JSON``; returns the exit code."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: export_net SOURCE DEST ROOT EXTRA_JSON", file=sys.stderr)
        return 2
    source, destination, root, extra = args
    path = export_net(source, destination, json.loads(extra), relative_to=root)
    print(path)
    return 0

