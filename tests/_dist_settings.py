"""The training runs the distributed tests compare (tiny: CPU, a few seconds each)."""

# 40 synthetic images: 32 train in 4 batches of 8 (4 per process), 4 val; the small CNN has
# batch norm and the standard augmentation draws random numbers.
CLASSIFIER_ARGS = [
    "train-classifier", "--dataset", "synthetic", "--n", "40", "--model", "small-cnn",
    "--batch-size", "8", "--image-size", "32", "--augment", "standard", "--seed", "3",
    "--device", "cpu", "--quiet",
]
# The NET on the maps of that classifier: 16 px maps, batches of 4, no early stop.
FUSION_ARGS = [
    "train-fusion", "--batch-size", "4", "--resolution", "16", "--seed", "1", "--patience", "9",
    "--device", "cpu", "--quiet",
]
