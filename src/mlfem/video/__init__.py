"""Explaining videos: reading clips with PyAV, preprocessing them for video models, and
writing per-frame maps and overlay animations.

PyAV (``pip install 'mlfem[video]'``) and torchvision are imported only when a video is read
or written, or a torchvision architecture's preprocessing is asked for; importing this package
costs neither.
"""

from mlfem.video.overlay import (
    VIDEO_FORMATS,
    blend_frames,
    save_layer_strip,
    save_maps,
    write_animation,
)
from mlfem.video.preprocessing import (
    KINETICS_MEAN,
    KINETICS_STD,
    VideoPreprocessing,
    video_preprocessing_for,
)
from mlfem.video.reader import (
    VIDEO_SUFFIXES,
    Clip,
    VideoInfo,
    VideoReadError,
    count_clips,
    find_videos,
    iter_frames,
    probe_video,
    read_clips,
    sample_clips,
)

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "VIDEO_FORMATS",
    "VIDEO_SUFFIXES",
    "Clip",
    "VideoInfo",
    "VideoPreprocessing",
    "VideoReadError",
    "blend_frames",
    "count_clips",
    "find_videos",
    "iter_frames",
    "probe_video",
    "read_clips",
    "sample_clips",
    "save_layer_strip",
    "save_maps",
    "video_preprocessing_for",
    "write_animation",
]
