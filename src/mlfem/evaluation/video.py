"""``mlfem evaluate`` on a video dataset: one row per clip and method in ``results.csv``.

A video dataset's sample is a clip: ``image`` uint8 (3, T, H, W), ``gfdm`` (T, H, W) (one
GFDM per frame, all zeros on frames no observer looked at) and ``fixations`` one (N, 3) tensor
of rows ``(t, x, y)`` per observer (:mod:`mlfem.datasets.synthetic_video`). The run is the
image run with three parts swapped for the ones here (the runner picks them with
:func:`is_video_dataset`; images take exactly the code they took before):

* :class:`PreparedClips`: each clip read in a DataLoader worker, every frame preprocessed as
  the model's images are (:class:`ClipPreprocess`), giving the model input (3, T, h, w);
* :class:`VideoScorer`: the methods' clip maps (B, T, h, w) in one batch, mapped back to the
  frames' size, and the metrics computed **frame by frame and averaged over the frames** that
  have gaze (:func:`mlfem.gaze.video_scores.score_clip`: frames without gaze are skipped);
  the centre-bias reference is the image centre bias on every frame;
* the report's gallery keeps each clip's **middle frame** (the clip, its GFDM, every method's
  map and the per-layer maps at that frame), so the report works unchanged.

What images have and clips do not (yet): the per-observer protocol and the human ceiling
(rows per observer on video are not defined here), the network metrics (deletion, insertion,
stability, randomisation), the shuffled AUC (its negatives pool image fixations), and methods
that do not explain clips (pixel attributions, LIME, occlusion, CS-FEM, the NET fusion trained
on image maps): each is refused with an error that says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mlfem.evaluation.config import EvaluationConfig, EvaluationError, gfdm_settings
from mlfem.evaluation.methods import REFERENCE_METHODS, MethodRunner
from mlfem.evaluation.model import EvaluatedModel
from mlfem.evaluation.prepared import Skip, image_seed, read_sample
from mlfem.evaluation.scoring import label_space, row_identity

if TYPE_CHECKING:
    from mlfem.models import Placement

__all__ = [
    "VIDEO_METHODS",
    "ClipPreprocess",
    "PreparedClip",
    "PreparedClips",
    "VideoScorer",
    "is_video_dataset",
]

#: Methods that explain clips (B, C, T, H, W): the FEM family (per-layer FEM maps on
#: (T, H, W)) and the CAM family (gradients pooled over (T, H, W)).
VIDEO_METHODS: tuple[str, ...] = (
    "mlfem", "mlfem-add", "mlfem-top", "mlfem-max", "mlfem-fem", "fem",
    "gradcam", "gradcampp", "layercam", "layercam-multi",
)


def is_video_dataset(dataset: Any) -> bool:
    """Whether ``dataset``'s samples are clips: video datasets declare the temporal sigma of
    their GFDMs (``temporal_sigma``), image datasets have none."""
    return getattr(dataset, "temporal_sigma", None) is not None


class ClipPreprocess:
    """Picklable: a uint8 clip (3, T, H, W) to the model input (3, T, h, w), each frame
    through the model's image preprocessing (``preprocess``: uint8 (3, H, W) to ``(input,
    placement)``), and the placement shared by every frame."""

    def __init__(self, preprocess: Callable[[torch.Tensor], tuple[torch.Tensor, Placement]]) -> None:
        self.preprocess = preprocess

    def __call__(self, clip: torch.Tensor) -> tuple[torch.Tensor, Placement]:
        if clip.ndim != 4:
            raise ValueError(f"a clip must be uint8 (3, T, H, W), got shape {tuple(clip.shape)}")
        frames = [self.preprocess(clip[:, t]) for t in range(clip.shape[1])]
        return torch.stack([tensor for tensor, _ in frames], dim=1), frames[0][1]

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.preprocess, "describe", None)
        return {"per_frame": describe() if callable(describe) else repr(self.preprocess)}


@dataclass
class PreparedClip:
    """One clip as a DataLoader worker hands it to :class:`VideoScorer` (the video analogue of
    :class:`mlfem.evaluation.prepared.PreparedImage`); ``frame`` (uint8 (3, H, W), the middle
    frame) is kept for gallery clips only."""

    position: int
    image_id: str
    input: torch.Tensor
    placement: Placement
    gfdm: torch.Tensor
    fixations: list[torch.Tensor]
    labels: list[int]
    class_names: list[str]
    n_classes_present: int
    category: str
    split: str
    size: tuple[int, int]
    frame: torch.Tensor | None


class PreparedClips(torch.utils.data.Dataset):
    """Reads clips and preprocesses them for the model, in DataLoader workers."""

    def __init__(self, dataset: Any, indices: Sequence[int], preprocess: Callable, gallery: int) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.preprocess = ClipPreprocess(preprocess)
        self.gallery = gallery

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> PreparedClip | Skip:
        sample = read_sample(self.dataset, self.indices[position], position)
        if isinstance(sample, Skip):
            return sample
        clip = sample.image
        if clip.ndim != 4 or tuple(sample.gfdm.shape) != (clip.shape[1], *clip.shape[2:]):
            return Skip(position, sample.image_id, f"not a clip: image {tuple(clip.shape)}, "
                        f"gfdm {tuple(sample.gfdm.shape)} (expected (3, T, H, W) and (T, H, W))")
        tensor, placement = self.preprocess(clip)
        return PreparedClip(
            position=position,
            image_id=sample.image_id,
            input=tensor,
            placement=placement,
            gfdm=sample.gfdm,
            fixations=[f for f in sample.fixations if len(f)],
            labels=list(sample.labels),
            class_names=list(sample.class_names),
            n_classes_present=int(sample.n_classes_present),
            category=sample.category or "",
            split=sample.split or "",
            size=(int(clip.shape[2]), int(clip.shape[3])),
            frame=clip[:, clip.shape[1] // 2].contiguous() if position < self.gallery else None,
        )


class VideoScorer:
    """The methods, metrics and centre-bias reference of a run on clips (the video analogue of
    :class:`mlfem.evaluation.scoring.Scorer`, with the same interface for the runner)."""

    #: Clips have no per-observer protocol nor human ceiling (module docstring).
    observer_protocol = False
    network = None

    def __init__(self, config: EvaluationConfig, model: EvaluatedModel, dataset: Any) -> None:
        from mlfem.metrics import resolve

        self.config = config
        self.metrics = list(config.metrics)
        refused = [m for m in config.methods if m not in VIDEO_METHODS]
        if refused:
            raise EvaluationError(
                f"method(s) {', '.join(refused)} do not explain video clips; on a video dataset "
                f"choose among {', '.join(VIDEO_METHODS)}"
            )
        network = [m for m in self.metrics if resolve(m).uses_model]
        if network or "sauc" in self.metrics:
            raise EvaluationError(
                f"metric(s) {', '.join(network + [m for m in self.metrics if m == 'sauc'])} are not "
                "computed on video clips (network metrics and the shuffled AUC are image-only); "
                "use gaze metrics such as pcc, sim, nss, kld, auc_judd"
            )
        self.sigma = gfdm_settings(dataset).sigma
        self.multi_label, self.class_names, self.labels_comparable = label_space(model, dataset)
        try:
            self.runner = MethodRunner(
                model.model, config.methods, layers=config.layers, alpha=config.alpha, k=config.k,
                normalize=config.normalize, method_options=config.method_options,
            )
        except (ValueError, TypeError) as error:
            raise EvaluationError(str(error)) from error
        self.gradient_free = not self.runner.gradient_methods()
        self.no_ceiling = 0

    @property
    def references(self) -> tuple[str, ...]:
        return ("centre-bias",) if self.config.references else ()

    def columns(self) -> list[str]:
        """The metric columns of ``results.csv`` (one value per clip: the mean over frames)."""
        return list(self.metrics)

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records about the video protocol."""
        return {
            "rows": "one per clip and method; image_id is the clip id, height x width the frame size",
            "metrics": "per frame against that frame's GFDM (fixations for location metrics), "
                       "averaged over the frames with gaze (mlfem.gaze.video_scores.score_clip)",
            "gallery": "the middle frame of each clip",
        }

    def close(self) -> None:
        self.runner.close()

    # ---------------------------------------------------------------- per batch
    def process(self, items: list[PreparedClip], pending: dict[str, set[str]]) -> list[dict[str, Any]]:
        """Rows for a batch of prepared clips; ``pending`` maps clip id to missing rows."""
        wanted = set().union(*(pending[item.image_id] for item in items))
        methods = [m for m in self.config.methods if m in wanted]
        maps, layers, logits = self._explain(items, methods)
        rows = []
        for j, item in enumerate(items):
            # Clip maps on the frames' own size: (T, h, w) -> (T, H, W), frame by frame.
            originals = {name: item.placement.to_original(m[j].float()) for name, m in maps.items()}
            scores = {name: self._score(item, saliency) for name, saliency in originals.items()}
            if "centre-bias" in pending[item.image_id] and self.references:
                scores["centre-bias"] = self._score(item, self._centre(item))
            self._save_gallery(item, originals, None if layers is None else layers[j])
            rows += self._rows(item, methods, logits[j], scores)
        return rows

    def _explain(self, items: list[PreparedClip], methods: list[str]) -> tuple[dict, Any, torch.Tensor]:
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(items):
            by_shape.setdefault(tuple(item.input.shape), []).append(i)
        if len(by_shape) == 1:
            result = self.runner.run(torch.stack([i.input for i in items]).to(self.runner.device), methods)
            return result.maps, result.layer_maps, result.logits
        # Clips of several lengths or sizes: each group runs alone, results per clip.
        maps: dict[str, list] = {m: [None] * len(items) for m in methods}
        layers: list = [None] * len(items)
        logits: list = [None] * len(items)
        for members in by_shape.values():
            result = self.runner.run(torch.stack([items[i].input for i in members]).to(self.runner.device), methods)
            for j, i in enumerate(members):
                for name in methods:
                    maps[name][i] = result.maps[name][j]
                layers[i] = None if result.layer_maps is None else result.layer_maps[j]
                logits[i] = result.logits[j]
        return maps, layers, logits

    def _score(self, item: PreparedClip, saliency: torch.Tensor) -> dict[str, float | None]:
        """The clip's metric values: per frame, averaged over the frames with gaze."""
        from mlfem.gaze.video_scores import score_clip

        # No observer at all: every frame is skipped and the values are NaN, as for an image
        # without fixations.
        rows = torch.cat(item.fixations) if item.fixations else torch.zeros((0, 3))
        result = score_clip(
            saliency.cpu(), gfdm=item.gfdm.float(), fixations=rows,
            metrics=self.metrics, seed=image_seed(self.config.seed, item.image_id),
        )
        return {m: float(result[m]) for m in self.metrics}

    @staticmethod
    def _centre(item: PreparedClip) -> torch.Tensor:
        from mlfem.gaze import centre_bias

        frames = int(item.gfdm.shape[0])
        return centre_bias(*item.size).expand(frames, -1, -1)

    def _save_gallery(self, item: PreparedClip, maps: dict[str, torch.Tensor], layers: Any) -> None:
        """The clip's middle frame, its GFDM and maps at that frame, for the report."""
        from mlfem.evaluation.maps import save_gallery_entry

        if item.frame is None:
            return
        middle = int(item.gfdm.shape[0]) // 2
        layer_maps = None if layers is None else item.placement.to_original(layers[:, middle].float().cpu())
        save_gallery_entry(
            self.config.out / "maps", item.position, item.image_id, item.frame, item.gfdm[middle],
            {name: m[middle].cpu() for name, m in maps.items()}, layer_maps, self.runner.layer_names,
        )

    def _rows(self, item: PreparedClip, methods: list[str], logits: torch.Tensor,
              scores: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
        common = row_identity(item, logits, self.class_names, self.multi_label,
                              self.labels_comparable)
        # References first, as for images: once a clip's method rows are on disk, so are these.
        kinds = [(r, "reference") for r in REFERENCE_METHODS] + [(m, "method") for m in methods]
        return [{**common, "method": name, "kind": kind, **scores[name]}
                for name, kind in kinds if name in scores]
