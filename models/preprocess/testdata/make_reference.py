#!/usr/bin/env python3
"""Writes reference preprocessing outputs for preprocess_test.cc.

Usage: make_reference.py OUT_DIR

For each test image this writes OUT_DIR/<name>.<ext> (the encoded file the C++ side reads) and
  <name>.cls.npy  the official classification eval transform: PIL open + convert('RGB'),
                  torchvision Resize(224, bicubic), CenterCrop(224), ToTensor, Normalize
  <name>.det.npy  mmdetection's test pipeline as the official config defines it, written with
                  cv2/numpy calls (mmcv.imrescale + imnormalize semantics); also <name>.det.txt
                  with "new_w new_h scale_x scale_y"
  <name>.seg.npy  mmsegmentation's pipeline (rescale to (2048, 512), resize to a multiple of 32)
and OUT_DIR/index.txt listing the names. Independent of the C++ implementation.
"""
import io
import os
import sys

import cv2
import numpy as np
from PIL import Image
import torch
from torchvision import transforms

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"


def cls_reference(data):
    img = Image.open(io.BytesIO(data)).convert("RGB")
    t = transforms.Compose([
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    return t(img).numpy().astype(np.float32)


def rescale(img, scale):
    h, w = img.shape[:2]
    long_edge, short_edge = max(scale), min(scale)
    sf = min(long_edge / max(h, w), short_edge / min(h, w))
    new_w, new_h = int(w * float(sf) + 0.5), int(h * float(sf) + 0.5)
    out = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return out, np.array([new_w / w, new_h / h], dtype=np.float32)


def normalize(img):
    mean = np.array([123.675, 116.28, 103.53], dtype=np.float64).reshape(1, -1)
    stdinv = 1 / np.array([58.395, 57.12, 57.375], dtype=np.float64).reshape(1, -1)
    img = img.copy().astype(np.float32)
    cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
    cv2.subtract(img, mean, img)
    cv2.multiply(img, stdinv, img)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def dense_references(data):
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    det_img, factor = rescale(bgr, (1333, 800))
    det = normalize(det_img)
    seg_img, _ = rescale(bgr, (2048, 512))
    h, w = seg_img.shape[:2]
    seg_img = cv2.resize(seg_img, (int(np.ceil(w / 32)) * 32, int(np.ceil(h / 32)) * 32),
                         interpolation=cv2.INTER_LINEAR)
    return det, factor, normalize(seg_img)


def encoded_images():
    for name in ["rocket.jpg", "chelsea.png", "camera.png", "horse.png", "green_palette.png",
                 "coffee.png", "hubble_deep_field.jpg"]:
        with open(os.path.join(SKIMAGE, name), "rb") as f:
            yield name, f.read()
    rng = np.random.default_rng(5)
    # Odd sizes and formats made here: a small odd-sized JPEG, a tall grayscale JPEG, a wide PNG
    # smaller than the crop (upscaling), and an RGBA PNG with random alpha.
    def encode(arr, fmt, **kw):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt, **kw)
        return buf.getvalue()
    yield "odd97x61.jpg", encode(rng.integers(0, 256, (61, 97, 3), dtype=np.uint8), "JPEG", quality=90)
    yield "gray_tall.jpg", encode(rng.integers(0, 256, (333, 120), dtype=np.uint8), "JPEG")
    yield "small_wide.png", encode(rng.integers(0, 256, (150, 400, 3), dtype=np.uint8), "PNG")
    yield "rgba.png", encode(rng.integers(0, 256, (230, 230, 4), dtype=np.uint8), "PNG")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    names = []
    for name, data in encoded_images():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        np.save(os.path.join(out, name + ".cls.npy"), cls_reference(data))
        det, factor, seg = dense_references(data)
        np.save(os.path.join(out, name + ".det.npy"), det)
        np.save(os.path.join(out, name + ".seg.npy"), seg)
        with open(os.path.join(out, name + ".det.txt"), "w") as f:
            f.write("%d %d %.9g %.9g\n" % (det.shape[2], det.shape[1], factor[0], factor[1]))
        names.append(name)
    with open(os.path.join(out, "index.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
