"""Offline data helpers: bundled real photos and ImageNet metadata."""

from .imagenet import IMAGENET_CLASSES, IMAGENET_MEAN, IMAGENET_STD
from .photos import (PHOTO_NAMES, crop_window, load_image, load_photos, photo_array, preprocess, read_image,
                     to_rgb_float, uncrop)

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PHOTO_NAMES",
    "crop_window",
    "load_image",
    "load_photos",
    "photo_array",
    "preprocess",
    "read_image",
    "to_rgb_float",
    "uncrop",
]
