"""Augmentation of whole batches on the batch's device, with per-sample random parameters.

    geometry.py  the affine kernel: one matrix per sample, consecutive geometric ops resampled once
    ops.py       the ops, registered by name (flip, crop, rotate, rrc, brightness, erase, ...)
    auto.py      TrivialAugment / RandAugment, built on the ops' own pixel code
    policy.py    presets and the `op:key=value,op` grammar
    pipeline.py  Augment: uint8 -> ops -> normalized float, in cache-sized chunks on CPU

Randomness comes only from the generator, which the loader seeds from (seed, epoch, batch), so
a batch is reproducible.

    policy = build_augment("flip,crop:padding=4,rotate:degrees=15", mean, std)
    x = policy(x_uint8, generator)          # float, normalized
"""
from tinyvision.data.augment import auto  # noqa: F401  (registers trivialaugment, randaugment)
from tinyvision.data.augment.geometry import GeometricOp, Geometry, affine_grid
from tinyvision.data.augment.ops import (OPS, AutoContrast, Brightness, Contrast, Crop, Cutout, Erase, Flip, Posterize,
                                        RandomResizedCrop, Resize, Rotate, RotateChoice, Saturation, Sharpness, Shear,
                                        Solarize, SwitchOff, Translate, register)
from tinyvision.data.augment.pipeline import Augment, build_augment
from tinyvision.data.augment.policy import PRESETS, parse_policy

__all__ = ["OPS", "PRESETS", "Augment", "AutoContrast", "Brightness", "Contrast", "Crop", "Cutout", "Erase", "Flip",
           "GeometricOp", "Geometry", "Posterize", "RandomResizedCrop", "Resize", "Rotate", "RotateChoice",
           "Saturation", "Sharpness", "Shear", "Solarize", "SwitchOff", "Translate", "affine_grid", "build_augment",
           "parse_policy", "register"]
