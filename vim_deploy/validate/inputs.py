"""Validation inputs: fresh random batches and real photos with the official preprocessing.

Preprocessing follows hustvl/Vim's eval transform (timm/DeiT): resize the shorter side to
``int(size / crop_pct)`` (256 for 224) with bicubic interpolation, center crop ``size``, scale to
[0, 1], normalize with the ImageNet mean and std.
"""

from __future__ import annotations

import os

import numpy as np

from vim_deploy import log
from vim_deploy.errors import VimDeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")


def random_batches(n: int, batch_size: int, img_size: int, seed: int):
    """``n`` images in batches, standard-normal (what normalized photos roughly look like)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        yield rng.standard_normal((b, 3, img_size, img_size), dtype=np.float32)
        done += b


def preprocess(img, img_size: int, crop_pct: float, mean, std) -> np.ndarray:
    """PIL image -> (3, size, size) float32, the official eval transform."""
    from PIL import Image

    img = img.convert("RGB")
    scale = int(img_size / crop_pct)
    w, h = img.size
    if w <= h:
        nw, nh = scale, int(scale * h / w)
    else:
        nw, nh = int(scale * w / h), scale
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - img_size) / 2.0)), int(round((nh - img_size) / 2.0))
    img = img.crop((left, top, left + img_size, top + img_size))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_images(source: str, img_size: int, crop_pct: float, mean, std) -> tuple[np.ndarray, list[str]]:
    """A folder of images, or ``skimage`` for scikit-image's bundled photos."""
    from PIL import Image

    pics, names = [], []
    if source == "skimage":
        try:
            import skimage.data as data
        except ImportError:
            raise VimDeployError("--images skimage needs scikit-image.",
                                 "Install the images extra: pip install 'vim-deploy[images]' (scikit-image).") from None
        for name in SKIMAGE_PHOTOS:
            arr = getattr(data, name)()
            if arr.ndim == 2:
                arr = np.stack([arr] * 3, -1)
            pics.append(preprocess(Image.fromarray(arr[..., :3]), img_size, crop_pct, mean, std))
            names.append(f"skimage:{name}")
    else:
        if not os.path.isdir(source):
            raise VimDeployError(f"image folder '{source}' does not exist.", "Give a folder of .jpg/.png files, or 'skimage'.")
        files = sorted(f for f in os.listdir(source) if f.lower().endswith(IMAGE_SUFFIXES))
        converted: dict[str, list[str]] = {}
        if not files:
            raise VimDeployError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in '{source}'.")
        for f in files:
            try:
                with Image.open(os.path.join(source, f)) as im:
                    if im.mode != "RGB":
                        converted.setdefault(im.mode, []).append(f)
                    pics.append(preprocess(im, img_size, crop_pct, mean, std))
            except OSError as e:
                raise VimDeployError(f"cannot read image '{os.path.join(source, f)}': {e}.") from None
            names.append(f)
        for mode, fs in sorted(converted.items()):
            log.info(f"{len(fs)} image(s) in {mode} mode converted to RGB as the official transform does "
                     f"(e.g. {fs[0]}).")
    return np.stack(pics), names
