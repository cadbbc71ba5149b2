#!/usr/bin/env python3
"""Generates the InternImage parity fixtures in tests/fixtures/internimage/ from the OFFICIAL code.

Usage (needs Debian's python3-torch and a checkout of OpenGVLab/InternImage, which is never
committed here):
    /usr/bin/python3 tests/parity/make_internimage_fixtures.py /path/to/InternImage tests/fixtures/internimage

The official classification model runs on the CPU through its pure-PyTorch DCNv3 path
(core_op='DCNv3_pytorch'). Its compiled-extension and timm imports are satisfied with stand-ins
(the extension is never called; DropPath is the identity at drop_path_rate 0). Each fixture is a
reduced-size configuration exercising one structural option of the official variants:
    <name>.pth            torch.save({'model': state_dict, 'epoch': 0}) of random weights, stored
                          as fp32, bf16 or fp16 (see STORAGE)
    input.npy             the seeded input batch all fixtures share, float32 2 x 3 x 64 x 64
    <name>.logits.npy     the official forward() logits
    <name>.level{0-3}.npy the official forward_features_seq_out() levels (NCHW)
    <name>.config.txt     the configuration (read by tests/internimage_parity_test.cc)
    input.<H>x<W>.npy, <name>.logits.<H>x<W>.npy
                          the same models at other input sizes (SIZES: the official classifiers
                          pool globally, so they run at any resolution, down to 1 x 1)
plus clip_head.* for the attention-pooling head of InternImage-H/G at reduced width.
"""
import importlib
import os
import sys
import types

import numpy as np
import torch


def install_stand_ins():
    # The CUDA extension module: imported by ops_dcnv3/functions/dcnv3_func.py, never called here.
    sys.modules["DCNv3"] = types.ModuleType("DCNv3")
    import pkg_resources
    real = pkg_resources.get_distribution

    class _Dist:
        version = "1.0"

    pkg_resources.get_distribution = lambda name: _Dist() if name == "DCNv3" else real(name)
    # timm.models.layers: DropPath (identity in eval) and trunc_normal_.
    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")

    class DropPath(torch.nn.Module):
        def __init__(self, p=0.0):
            super().__init__()

        def forward(self, x):
            return x

    layers.DropPath = DropPath
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    timm.models, models.layers = models, layers
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})


BASE = dict(core_op="DCNv3_pytorch", channels=16, depths=[1, 1, 2, 1], groups=[1, 2, 4, 8],
            num_classes=10, mlp_ratio=4.0, drop_path_rate=0.0, offset_scale=1.0, post_norm=False,
            layer_scale=None)

CASES = {
    # InternImage-T: pre-norm, no layer scale.
    "t": dict(),
    # Detection/segmentation backbones: layer_scale=1.0 creates gamma1/gamma2.
    "t_layer_scale": dict(layer_scale=1.0),
    # S/B: post-norm with layer scale (no level norms).
    "s": dict(post_norm=True, layer_scale=1e-5, depths=[1, 1, 1, 1], groups=[2, 4, 8, 16]),
    # L/XL: offset_scale 2.
    "l": dict(post_norm=True, layer_scale=1e-5, offset_scale=2.0, depths=[1, 1, 1, 1]),
    # H: res_post_norm, centre feature scale, 5x5 depthwise conv, level-2 post norms (D = 32).
    "h": dict(groups=[1, 1, 2, 4], dw_kernel_size=5, res_post_norm=True,
              center_feature_scale=True, level2_post_norm=True, level2_post_norm_block_ids=[0, 1]),
    # G: post-norm without layer scale, centre feature scale, 5x5 dw conv, level-2 post norms.
    "g": dict(groups=[1, 1, 2, 4], dw_kernel_size=5, post_norm=True, depths=[1, 1, 2, 1],
              center_feature_scale=True, level2_post_norm=True, level2_post_norm_block_ids=[1]),
}

# Input sizes (H, W) besides 64 x 64 at which the official logits are recorded, and the cases.
SIZES = [(1, 1), (7, 9), (40, 72)]
SIZE_CASES = ["t", "h", "g"]

# Storage precision of each fixture's weights (the reader converts; the reference uses the rounded
# values): fp32, bf16 and fp16 files all get exercised.
STORAGE = {"t": torch.float32, "t_layer_scale": torch.bfloat16}


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                v = torch.rand(t.shape, generator=g) + 0.5
            elif name.endswith("running_mean"):
                v = torch.randn(t.shape, generator=g) * 0.1
            elif name.endswith("gamma1") or name.endswith("gamma2"):
                v = torch.rand(t.shape, generator=g) + 0.5
            elif t.dim() == 1 and name.endswith("weight"):
                v = torch.rand(t.shape, generator=g) * 0.4 + 0.8
            elif t.dim() == 1:
                v = torch.randn(t.shape, generator=g) * 0.02
            else:
                fan_in = int(np.prod(t.shape[1:]))
                v = torch.randn(t.shape, generator=g) / fan_in ** 0.5
            t.copy_(v)


def save_npy(path, t):
    np.save(path, t.detach().contiguous().numpy().astype(np.float32))


def main():
    repo, out = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(repo, "classification"))
    install_stand_ins()
    intern_image = importlib.import_module("models.intern_image")
    os.makedirs(out, exist_ok=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2000))
    save_npy(os.path.join(out, "input.npy"), x)
    for i, (name, overrides) in enumerate(CASES.items()):
        cfg = dict(BASE, **overrides)
        model = intern_image.InternImage(**cfg)
        model.eval()
        randomize(model, 1000 + i)
        dtype = STORAGE.get(name, torch.float16)
        stored = {k: (v.to(dtype) if v.is_floating_point() else v)
                  for k, v in model.state_dict().items()}
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in stored.items()})
        with torch.no_grad():
            logits = model(x)
            levels = model.forward_features_seq_out(x)
            if name in SIZE_CASES:
                for h, w in SIZES:
                    xs = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))
                    save_npy(os.path.join(out, "input.%dx%d.npy" % (h, w)), xs)
                    save_npy(os.path.join(out, "%s.logits.%dx%d.npy" % (name, h, w)), model(xs))
        torch.save({"model": stored, "epoch": 0}, os.path.join(out, name + ".pth"))
        save_npy(os.path.join(out, name + ".logits.npy"), logits)
        for k, lv in enumerate(levels):
            save_npy(os.path.join(out, "%s.level%d.npy" % (name, k)), lv.permute(0, 3, 1, 2))
        with open(os.path.join(out, name + ".config.txt"), "w") as f:
            for key in ["channels", "depths", "groups", "num_classes", "offset_scale", "post_norm",
                        "layer_scale", "dw_kernel_size", "res_post_norm", "center_feature_scale",
                        "level2_post_norm_block_ids"]:
                v = cfg.get(key)
                if isinstance(v, list):
                    v = ",".join(str(e) for e in v)
                f.write("%s %s\n" % (key, "none" if v is None else v))
        print(name, tuple(logits.shape), "params", sum(p.numel() for p in model.parameters()))
    # The attention-pooling head of H/G at reduced width (dim 64, 4 heads, out 48).
    head = intern_image.AttentionPoolingBlock(dim=64, num_heads=4, qkv_bias=True, qk_scale=None,
                                              drop=0.0, attn_drop=0.0, norm_layer="LN", out_dim=48)
    head.eval()
    randomize(head, 77)
    x = torch.randn(2, 12, 64, generator=torch.Generator().manual_seed(78))
    with torch.no_grad():
        y = head(x)
    torch.save({"model": head.state_dict()}, os.path.join(out, "clip_head.pth"))
    save_npy(os.path.join(out, "clip_head.input.npy"), x)
    save_npy(os.path.join(out, "clip_head.output.npy"), y)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
