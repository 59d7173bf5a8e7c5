"""Do the explanation maps of a small 3-D CNN follow the moving objects of the synthetic video
benchmark? MLFEM and FEM against Grad-CAM on the same network, scored against per-frame GFDMs.

1. Trains ``small-cnn3d`` with ``mlfem.training.train_classifier`` (what ``mlfem
   train-classifier --model small-cnn3d`` runs) on the train split of ``synthetic-video``
   (``--n`` clips of ``--frames`` frames at ``--size`` px, data seed ``--data-seed``, the
   default 80/10/10 splits), fixed training seed, Adam, no augmentation (the labels are motion
   directions, which a flip would swap); or reuses the checkpoint an earlier run wrote to
   ``OUT/net`` with the same settings. Prints the training, validation and test accuracy.
2. Evaluates MLFEM (add fusion), FEM (last block) and Grad-CAM (last block) on the held-out
   test split with ``mlfem.evaluation.run_evaluation`` (what ``mlfem evaluate --classifier
   OUT/net/classifier.safetensors`` runs): per clip, PCC/NSS/SIM per frame against that frame's
   GFDM (NSS against its fixations), averaged over the frames with gaze; the centre-bias map on
   every frame is the evaluation's reference row.
3. Adds a random-map baseline (i.i.d. uniform noise per pixel and frame, seeded per clip) scored
   the same way, and for every method the share of frames whose map peaks on the moving target
   (the target's mask of that frame, from the dataset's ``extras``): whether the maps follow it.

Prints mean +- standard deviation over the test clips, and the machine and load.

    uv run python benchmarks/video_gaze.py --out /tmp/video-gaze
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_description  # noqa: E402

METHODS = ("mlfem-add", "fem", "gradcam")
METRICS = ("pcc", "nss", "sim")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the checkpoint (OUT/net) and the evaluation (OUT/eval)")
    parser.add_argument("--n", type=int, default=2000, help="clips in the dataset (80/10/10 splits; default 2000)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated clips (default 0)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch (default 16)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=1, help="processes generating the training clips (default 1)")
    parser.add_argument("--retrain", action="store_true", help="train again even when OUT/net holds a checkpoint")
    return parser.parse_args()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _train(args: argparse.Namespace, data: dict) -> Path:
    """The classifier checkpoint: trained now, or the one OUT/net holds for the same settings."""
    from mlfem.training import ClassifierConfig, train_classifier
    from mlfem.training.classifier import CLASSIFIER_FILE

    config = ClassifierConfig(
        dataset="synthetic-video", out=args.out / "net", dataset_options=data, model="small-cnn3d",
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, image_size=args.size,
        augment="none", seed=args.seed, device="cpu", num_workers=args.workers,
    )
    checkpoint = args.out / "net" / CLASSIFIER_FILE
    if checkpoint.is_file() and not args.retrain:
        recorded = json.loads(checkpoint.with_suffix(".json").read_text())["training"]
        wanted = config.settings()
        if all(recorded.get(k) == v for k, v in wanted.items() if k not in ("num_workers", "device")):
            print(f"reusing {checkpoint} (trained earlier with the same settings)")
            return checkpoint
        raise SystemExit(f"{checkpoint} was trained with other settings: pass --retrain or another --out")
    if args.retrain and (args.out / "net").exists():
        import shutil

        shutil.rmtree(args.out / "net")
    start = time.perf_counter()
    run = train_classifier(config, progress=False)
    elapsed = time.perf_counter() - start
    for record in run.history:
        print(f"  epoch {record['epoch']:2d}: train loss {record['train_loss']:.3f}, "
              f"val loss {record['val_loss']:.3f}, val accuracy {record['accuracy']:.3f}")
    print(f"trained in {elapsed:.0f} s ({_load()}); best epoch {run.best_epoch}")
    return run.checkpoint


def _accuracy(model: torch.nn.Module, dataset, preprocess) -> float:
    from mlfem.evaluation.video import ClipPreprocess

    clips = ClipPreprocess(preprocess)
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(dataset), 32):
            samples = [dataset[i] for i in range(start, min(len(dataset), start + 32))]
            inputs = torch.stack([clips(s.image)[0] for s in samples])
            predicted = model(inputs).argmax(1)
            correct += sum(int(p) == s.labels[0] for p, s in zip(predicted, samples))
    return correct / max(1, len(dataset))


def _peak_hits(saliency: torch.Tensor, masks: torch.Tensor) -> list[float]:
    """Per frame: 1 when the map's maximum lies on the target (its mask), else 0."""
    frames, height, width = saliency.shape
    peaks = saliency.reshape(frames, -1).argmax(1)
    return [float(masks[t].reshape(-1)[peaks[t]]) for t in range(frames)]


def main() -> None:
    args = _arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    from mlfem.datasets import open_dataset
    from mlfem.evaluation import read_results
    from mlfem.evaluation.model import from_classifier_checkpoint
    from mlfem.evaluation.prepared import image_seed
    from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
    from mlfem.evaluation.video import ClipPreprocess
    from mlfem.explainers.registry import create_explainer
    from mlfem.gaze.video_scores import score_clip

    print(f"machine: {machine_description(torch.device('cpu'))}; {_load()}")
    data = {"n": args.n, "seed": args.data_seed, "frames": args.frames, "size": args.size}
    print(f"synthetic-video {data}; small-cnn3d, seed {args.seed}, {args.epochs} epochs, "
          f"batch {args.batch_size}, Adam lr {args.lr}, no augmentation")
    checkpoint = _train(args, data)

    model = from_classifier_checkpoint(checkpoint)
    splits = str(args.out / "net" / "splits.json")
    sets = {name: open_dataset("synthetic-video", split=name, splits=splits, **data) for name in ("train", "val", "test")}
    accuracy = {name: _accuracy(model.model, dataset, model.preprocess) for name, dataset in sets.items()}
    print("accuracy: " + ", ".join(f"{name} {value:.3f} ({len(sets[name])} clips)" for name, value in accuracy.items())
          + f"; chance {1 / len(sets['test'].class_names):.3f}")

    start = time.perf_counter()
    summary = run_evaluation(EvaluationConfig(
        dataset=None, classifier=str(checkpoint), out=args.out / "eval", split="test",
        methods=list(METHODS), metrics=list(METRICS), batch_size=8, gallery=6, progress=False,
        overwrite=True, seed=0,
    ))
    print(f"evaluated {summary.n_evaluated} test clips in {summary.elapsed:.0f} s "
          f"({summary.rows} rows in {summary.results}; {_load()})")
    table = read_results(summary.results)
    values: dict[str, dict[str, list[float]]] = {}
    for row in table.rows():
        for metric in METRICS:
            values.setdefault(row["method"], {}).setdefault(metric, []).append(float(row[metric]))

    # The random-map baseline and the peak-on-target share, clip by clip.
    test = sets["test"]
    clips = ClipPreprocess(model.preprocess)
    explainers = {name: create_explainer(name, model.model) for name in METHODS}
    hits: dict[str, list[float]] = {name: [] for name in (*METHODS, "random")}
    for index in range(len(test)):
        sample = test[index]
        rows = torch.cat([f for f in sample.fixations if len(f)])
        generator = torch.Generator().manual_seed(image_seed(0, sample.image_id))
        noise = torch.rand(sample.gfdm.shape, generator=generator)
        scores = score_clip(noise, sample.gfdm, rows, METRICS)
        for metric in METRICS:
            values.setdefault("random", {}).setdefault(metric, []).append(scores[metric])
        hits["random"] += _peak_hits(noise, sample.extras["masks"])
        inputs, placement = clips(sample.image)
        for name, explainer in explainers.items():
            saliency = placement.to_original(explainer(inputs[None])[0])
            hits[name] += _peak_hits(saliency, sample.extras["masks"])

    width = max(len(m) for m in values)
    print()
    print(f"{'method':<{width}}  clips  " + "  ".join(f"{m.upper():>15}" for m in METRICS) + "  peak on target")
    for method in (*METHODS, "centre-bias", "random"):
        cells = []
        for metric in METRICS:
            column = [v for v in values[method][metric] if not math.isnan(v)]
            undefined = len(values[method][metric]) - len(column)
            # A constant map (Grad-CAM of an untrained net, say) has no PCC: counted, not averaged.
            mean = statistics.fmean(column) if column else math.nan
            spread = statistics.stdev(column) if len(column) > 1 else math.nan
            cells.append(f"{mean:7.3f} +- {spread:5.3f}" + (f" ({undefined} nan)" if undefined else ""))
        share = f"{statistics.fmean(hits[method]):.3f}" if method in hits else "-"
        print(f"{method:<{width}}  {len(values[method]['pcc']):5d}  " + "  ".join(cells) + f"  {share:>14}")
    print(f"\n(mean +- standard deviation over the test clips; metrics per frame against its GFDM, "
          f"averaged over the frames with gaze; peak on target: share of frames whose map maximum "
          f"lies on the moving target; {time.perf_counter() - start:.0f} s; {_load()})")


if __name__ == "__main__":
    main()
