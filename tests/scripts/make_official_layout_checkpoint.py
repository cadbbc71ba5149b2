#!/usr/bin/env python3
"""Writes a checkpoint with the exact layout of an official InternImage release, random values.

Usage: make_official_layout_checkpoint.py KEYS_TSV OUT.pth [--prefix module.] [--drop KEY]
                                          [--dtype float16]

KEYS_TSV is one of tests/fixtures/keys/internimage_*.tsv (the official names and shapes).
The file is what classification/utils.py of the official repository saves: {'model': state_dict,
'optimizer': ..., 'max_accuracy': ..., 'epoch': ...}. --drop leaves one key out (for the strict
loading tests).
"""
import argparse

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("keys")
    ap.add_argument("out")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--drop", default=None)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    g = torch.Generator().manual_seed(11)
    dtype = getattr(torch, a.dtype)
    sd = {}
    with open(a.keys) as f:
        for line in f:
            name, shape = line.rstrip("\n").split("\t")
            if name == a.drop:
                continue
            if shape == "scalar":
                sd[a.prefix + name] = torch.tensor(0, dtype=torch.int64)
                continue
            dims = [int(d) for d in shape.split("x")]
            t = torch.randn(*dims, generator=g) * 0.02
            if name.endswith("running_var"):
                t = t.abs() + 1.0
            if len(dims) == 1 and name.endswith("weight"):
                t = t + 1.0
            sd[a.prefix + name] = t.to(dtype)
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.001}]},
                "max_accuracy": 83.5, "epoch": 299}, a.out)


if __name__ == "__main__":
    main()
