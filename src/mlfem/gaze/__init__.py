"""Human gaze ground truth: fixations, Gaze Fixation Density Maps (GFDM) and reference points.

* :func:`gfdm` / :func:`gfdm_batch`: fixation counts blurred with a Gaussian (sigma in pixels,
  or from the viewing geometry with :func:`sigma_from_geometry`), normalised to sum 1. The blur
  agrees with ``scipy.ndimage.gaussian_filter`` (``"reflect"`` or ``"zero"`` padding).
* :class:`Fixations`: every observer's fixations on one image (0-based pixels).
* :func:`centre_bias` / :class:`CentreBias`: the centre-bias baseline map.
* :func:`human_ceiling`: inter-observer consistency; :func:`observer_scores` scores any map
  under the same protocol; :class:`ObserverMaps` builds an image's observers once for both.
* :func:`read_osie`, :func:`read_fixation_csv`: readers for the ``mlfem gfdm`` inputs.
"""

from mlfem.gaze.blur import PADDINGS, gaussian_blur, gaussian_kernel1d, kernel_radius
from mlfem.gaze.centre import CentreBias, centre_bias
from mlfem.gaze.density import (
    FixationCounts,
    GFDMBatch,
    blur_counts,
    density_from_counts,
    fixation_counts,
    fixation_map,
    gfdm,
    gfdm_batch,
)
from mlfem.gaze.fixations import Fixations
from mlfem.gaze.geometry import ViewingGeometry, pixels_per_degree, sigma_from_geometry
from mlfem.gaze.io import GazeDataError, read_fixation_csv, read_osie
from mlfem.gaze.observer_maps import ObserverMaps
from mlfem.gaze.reference import (
    ObserverScores,
    human_ceiling,
    human_ceiling_per_image,
    human_ceilings,
    observer_scores,
)

center_bias = centre_bias  # US spelling
CenterBias = CentreBias

__all__ = [
    "PADDINGS",
    "CenterBias",
    "CentreBias",
    "FixationCounts",
    "Fixations",
    "GFDMBatch",
    "GazeDataError",
    "ObserverMaps",
    "ObserverScores",
    "ViewingGeometry",
    "blur_counts",
    "center_bias",
    "centre_bias",
    "density_from_counts",
    "fixation_counts",
    "fixation_map",
    "gaussian_blur",
    "gaussian_kernel1d",
    "gfdm",
    "gfdm_batch",
    "human_ceiling",
    "human_ceiling_per_image",
    "human_ceilings",
    "kernel_radius",
    "observer_scores",
    "pixels_per_degree",
    "read_fixation_csv",
    "read_osie",
    "sigma_from_geometry",
]
