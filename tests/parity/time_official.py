#!/usr/bin/env python3
"""Times the OFFICIAL InternImage-T code on this machine, for docs/performance.md.

    /usr/bin/python3 tests/parity/time_official.py /path/to/InternImage [THREADS]

Runs the official classification model (pure-PyTorch DCNv3 path, the only one that runs on a
CPU) with Debian's torch, random weights, eval mode, no_grad: the 224x224 classifier at batch 1
and 8, and the detection/segmentation backbone (layer_scale 1.0) at 800x1344 (a padded 1333x800
COCO input) and 512x512 (an ADE20K input). Prints seconds per image. The official code is loaded
at run time from the given checkout (make_internimage_fixtures.install_stand_ins supplies its
compiled-extension and timm imports); nothing of it is stored here.
"""
import importlib
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_internimage_fixtures as mif  # noqa: E402


def timed(fn, runs):
    fn()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


def main():
    repo = sys.argv[1]
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    sys.path.insert(0, os.path.join(repo, "classification"))
    mif.install_stand_ins()
    ii = importlib.import_module("models.intern_image")
    cfg = dict(core_op="DCNv3_pytorch", channels=64, depths=[4, 4, 18, 4], groups=[4, 8, 16, 32],
               num_classes=1000, mlp_ratio=4.0, drop_path_rate=0.0, offset_scale=1.0)
    model = ii.InternImage(**cfg).eval()
    with torch.no_grad():
        for batch in (1, 8):
            x = torch.randn(batch, 3, 224, 224)
            s = timed(lambda: model(x), 3 if batch == 1 else 1)
            print(f"classifier 224x224 batch {batch}: {s / batch * 1e3:.0f} ms per image "
                  f"({batch / s:.2f} images/s)", flush=True)
        dense = ii.InternImage(**dict(cfg, layer_scale=1.0)).eval()
        for h, w, what in ((800, 1344, "detection input"), (512, 512, "segmentation input")):
            x = torch.randn(1, 3, h, w)
            s = timed(lambda: dense.forward_features_seq_out(x), 1)
            print(f"backbone {h}x{w} ({what}): {s:.2f} s per image", flush=True)


if __name__ == "__main__":
    main()
