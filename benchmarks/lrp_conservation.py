"""Does LRP conserve relevance on torchvision ResNets? captum's LRP against mlfem's (zennit).

LRP starts from a relevance of 1 on the target logit (a one-hot) and passes it down layer by
layer; a conserving implementation gives input relevances that sum to about 1. This prints,
for random-init ResNet-18 and ResNet-50 (seeded; eval mode), each image's target logit, the
sum of captum's ``LRP`` attributions (captum multiplies the initial relevance by the logit, so
its total should be about the logit), and the sum of ``mlfem.explainers.lrp.LRP``'s relevance
(EpsilonPlusFlat with zennit's ResNet canonizer; should be about 1). No timing: the figures do
not depend on the machine.

    uv run python benchmarks/lrp_conservation.py [--size 64] [--images 2]
"""

from __future__ import annotations

import argparse
import warnings

import torch


def main() -> None:
    import captum
    import torchvision
    from captum.attr import LRP as CaptumLRP

    from mlfem.explainers.lrp import LRP

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, captum {captum.__version__}")
    print("| model | image | target logit | captum LRP total | mlfem LRP (zennit) total |")
    print("|---|---:|---:|---:|---:|")
    for name in ("resnet18", "resnet50"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(num_classes=10).eval()
        images = torch.randn(args.images, 3, args.size, args.size)
        targets = torch.arange(args.images) % 10
        with torch.no_grad():
            logits = model(images).gather(1, targets[:, None])[:, 0]
        ours = LRP(model).relevance(images, targets).sum(dim=(1, 2, 3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum warns about the reused ReLU modules
            theirs = CaptumLRP(model).attribute(images.clone().requires_grad_(), target=targets)
        theirs = theirs.detach().sum(dim=(1, 2, 3))
        for index in range(args.images):
            print(f"| {name} | {index} | {logits[index]:.3f} | {theirs[index]:.3g} | {ours[index]:.3f} |")


if __name__ == "__main__":
    main()
