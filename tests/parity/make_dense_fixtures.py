#!/usr/bin/python3
"""Writes tests/fixtures/detseg/: inputs and outputs of the official Mask R-CNN stages.

The outputs come from the official mmdetection 2.x / mmcv 1.x functions themselves, loaded at run
time from source checkouts (nothing of them is copied here): the script parses each source file,
takes the named function or method definitions out of it (dropping decorators such as mmcv.jit and
registry hooks) and executes them against Debian's python3-torch, with only two substitutions:
mmcv's compiled `nms` op is replaced by torchvision.ops.nms (same > threshold rule, same areas),
and methods run on a small namespace object holding the attributes the official __init__ would set
for the InternImage configs.

    git -C <mirror of ManuelVeras/sph-retina> archive b33fcbf mmdet | tar -x -C /tmp/mmdet-2.28
    git -C <mirror of open-mmlab/mmcv> archive v1.5.0 mmcv/ops/nms.py | tar -x -C /tmp/mmcv-1.5
    /usr/bin/python3 tests/parity/make_dense_fixtures.py --mmdet /tmp/mmdet-2.28 \
        --mmcv /tmp/mmcv-1.5 --out tests/fixtures/detseg

Every array is a .npy file; models/detection/official_parity_test.cc reads them.
"""
import argparse
import ast
import copy
import os
import types

import numpy as np
import torch
import torch.nn.functional as F
import torchvision


def load_defs(path, names, namespace):
    """Executes the definitions `names` ("func" or "Class.method") of the file at `path` in
    `namespace` and returns it. Methods are bound by name ("Class.method")."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    wanted = set(names)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                key = node.name + '.' + getattr(item, 'name', '')
                if isinstance(item, ast.FunctionDef) and key in wanted:
                    found[key] = item
    missing = wanted - set(found)
    if missing:
        raise SystemExit(f'{path}: definitions not found: {sorted(missing)}')
    for key, node in found.items():
        node = copy.deepcopy(node)
        node.decorator_list = []
        module = ast.Module(body=[node], type_ignores=[])
        exec(compile(module, path, 'exec'), namespace)
        namespace[key] = namespace[node.name]
    return namespace


class AttrDict(dict):
    """The attribute access of mmcv's ConfigDict."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def mmcv_nms(boxes, scores, iou_threshold, offset=0, score_threshold=0, max_num=-1):
    """mmcv.ops.nms for the arguments the official configs use, on torchvision's kernel."""
    assert offset == 0 and score_threshold == 0 and max_num == -1
    keep = torchvision.ops.nms(boxes, scores, float(iou_threshold))
    return torch.cat([boxes[keep], scores[keep][:, None]], 1), keep


def official(args):
    ns = {'torch': torch, 'np': np, 'F': F, 'nms': mmcv_nms, 'copy': copy,
          'warnings': __import__('warnings')}
    mmdet = os.path.join(args.mmdet, 'mmdet')
    load_defs(os.path.join(args.mmcv, 'mmcv/ops/nms.py'), ['batched_nms'], ns)
    load_defs(os.path.join(mmdet, 'core/anchor/anchor_generator.py'),
              ['AnchorGenerator.gen_single_level_base_anchors', 'AnchorGenerator._meshgrid',
               'AnchorGenerator.single_level_grid_priors'], ns)
    load_defs(os.path.join(mmdet, 'core/bbox/coder/delta_xywh_bbox_coder.py'),
              ['delta2bbox', 'DeltaXYWHBBoxCoder.decode'], ns)
    load_defs(os.path.join(mmdet, 'core/post_processing/bbox_nms.py'), ['multiclass_nms'], ns)
    load_defs(os.path.join(mmdet, 'models/dense_heads/rpn_head.py'),
              ['RPNHead._get_bboxes_single', 'RPNHead._bbox_post_process'], ns)
    load_defs(os.path.join(mmdet, 'models/roi_heads/bbox_heads/bbox_head.py'),
              ['BBoxHead.get_bboxes'], ns)
    load_defs(os.path.join(mmdet, 'models/roi_heads/roi_extractors/single_level_roi_extractor.py'),
              ['SingleRoIExtractor.map_roi_levels'], ns)
    load_defs(os.path.join(mmdet, 'models/roi_heads/mask_heads/fcn_mask_head.py'),
              ['_do_paste_mask'], ns)
    return ns


def bind(ns, obj, *methods):
    for m in methods:
        setattr(obj, m.split('.')[1], types.MethodType(ns[m], obj))
    return obj


def coder(ns, stds):
    # DeltaXYWHBBoxCoder(target_means=0, target_stds=stds) with its defaults.
    c = types.SimpleNamespace(means=(0., 0., 0., 0.), stds=stds, clip_border=True,
                              add_ctr_clamp=False, ctr_clamp=32)
    return bind(ns, c, 'DeltaXYWHBBoxCoder.decode')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mmdet', required=True, help='folder holding mmdet/ (2.x sources)')
    parser.add_argument('--mmcv', required=True, help='folder holding mmcv/ops/nms.py (1.x)')
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    ns = official(args)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.RandomState(20240601)
    torch.set_num_threads(1)

    def save(name, array):
        array = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        np.save(os.path.join(args.out, name + '.npy'), np.ascontiguousarray(array))

    # AnchorGenerator(scales=[8], ratios=[0.5, 1, 2], strides=[4..64]) on a 128 x 160 input.
    strides = [4, 8, 16, 32, 64]
    sizes = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    gen = types.SimpleNamespace(center_offset=0., scale_major=True,
                                strides=[(s, s) for s in strides])
    bind(ns, gen, 'AnchorGenerator.gen_single_level_base_anchors', 'AnchorGenerator._meshgrid',
         'AnchorGenerator.single_level_grid_priors')
    gen.base_anchors = [gen.gen_single_level_base_anchors(s, torch.Tensor([8]),
                                                          torch.Tensor([0.5, 1.0, 2.0]))
                        for s in strides]
    anchors = [gen.single_level_grid_priors(sz, i, device='cpu') for i, sz in enumerate(sizes)]
    save('anchors', torch.cat(anchors))

    # RPNHead test-time selection for one image of 118 x 150 (unpadded) in that 128 x 160 input.
    rpn = types.SimpleNamespace(use_sigmoid_cls=True, bbox_coder=coder(ns, (1., 1., 1., 1.)),
                                test_cfg=AttrDict(nms_pre=1000, max_per_img=1000,
                                                  nms=dict(type='nms', iou_threshold=0.7),
                                                  min_bbox_size=0))
    bind(ns, rpn, 'RPNHead._get_bboxes_single', 'RPNHead._bbox_post_process')
    cls = [torch.from_numpy(rng.randn(3, h, w).astype(np.float32) * 2) for h, w in sizes]
    reg = [torch.from_numpy(rng.randn(12, h, w).astype(np.float32) * 0.5) for h, w in sizes]
    for i in range(5):
        save(f'rpn_cls_{i}', cls[i])
        save(f'rpn_reg_{i}', reg[i])
    proposals = rpn._get_bboxes_single(cls, reg, None, anchors, dict(img_shape=(118, 150, 3)),
                                       None)
    save('rpn_proposals', proposals)

    # delta2bbox through DeltaXYWHBBoxCoder.decode (RCNN stds), two boxes per roi.
    xy = rng.rand(300, 2).astype(np.float32) * 400
    rois = np.concatenate([xy, xy + rng.rand(300, 2).astype(np.float32) * 300 + 0.5], 1)
    deltas = rng.randn(300, 8).astype(np.float32) * 3
    save('decode_rois', rois)
    save('decode_deltas', deltas)
    save('decode_boxes', coder(ns, (0.1, 0.1, 0.2, 0.2)).decode(
        torch.from_numpy(rois), torch.from_numpy(deltas), max_shape=(500, 450, 3)))

    # SingleRoIExtractor.map_roi_levels (finest_scale 56), sizes around the level boundaries.
    side = np.concatenate([rng.rand(200) * 700, [111.99, 112, 224, 448, 0]]).astype(np.float32)
    aspect = np.exp(rng.randn(side.size) * 0.5).astype(np.float32)
    x0 = rng.rand(side.size).astype(np.float32) * 50
    lvl_rois = np.stack([np.zeros_like(side), x0, x0, x0 + side * aspect, x0 + side / aspect], 1)
    extractor = bind(ns, types.SimpleNamespace(finest_scale=56), 'SingleRoIExtractor.map_roi_levels')
    save('roi_level_rois', lvl_rois)
    save('roi_levels', extractor.map_roi_levels(torch.from_numpy(lvl_rois), 4))

    # BBoxHead.get_bboxes(rescale=True) + multiclass_nms: 200 rois x 80 classes (one NMS call),
    # and 1200 rois x 10 classes with more than 10000 candidates (mmcv's per-class split path).
    head = types.SimpleNamespace(custom_cls_channels=False, bbox_coder=coder(ns, (0.1, 0.1, 0.2, 0.2)))
    bind(ns, head, 'BBoxHead.get_bboxes')
    rcnn_cfg = AttrDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    for name, k, classes, spread in [('rcnn_small', 200, 80, 3.0), ('rcnn_split', 1200, 10, 0.3)]:
        xy = rng.rand(k, 2).astype(np.float32) * 300
        boxes = np.concatenate([xy, xy + rng.rand(k, 2).astype(np.float32) * 200 + 1], 1)
        r = np.concatenate([np.zeros((k, 1), np.float32), boxes], 1)
        score = rng.randn(k, classes + 1).astype(np.float32) * spread
        pred = rng.randn(k, 4 * classes).astype(np.float32)
        scale = np.array([0.6671875, 0.6666667, 0.6671875, 0.6666667], np.float32)
        dets, labels = head.get_bboxes(torch.from_numpy(r), torch.from_numpy(score),
                                       torch.from_numpy(pred), (333, 420, 3), scale, rescale=True,
                                       cfg=rcnn_cfg)
        candidates = int((torch.softmax(torch.from_numpy(score), -1)[:, :-1] > 0.05).sum())
        print(f'{name}: {candidates} candidates, {dets.shape[0]} detections')
        for suffix, array in [('rois', boxes), ('cls_score', score), ('bbox_pred', pred),
                              ('dets', dets), ('labels', labels)]:
            save(f'{name}_{suffix}', array)

    # _do_paste_mask (CPU path, skip_empty) + the >= 0.5 threshold, one box per call as mmdet's
    # get_seg_masks does on the CPU, into a 50 x 70 image.
    n = 30
    masks = rng.rand(n, 28, 28).astype(np.float32)
    masks[::3] = np.round(masks[::3] * 4) / 4  # lattice values: many samples land on 0.5
    xy = rng.rand(n, 2).astype(np.float32) * 70 - 10
    wh = rng.rand(n, 2).astype(np.float32) * 40
    wh[5] = 0  # a zero-sized box
    # Inside the image, as the clipped detections always are (mmdet fails on others).
    pboxes = np.concatenate([xy, xy + wh], 1).clip(0, [70, 50, 70, 50]).astype(np.float32)
    pasted = np.zeros((n, 50, 70), np.uint8)
    for i in range(n):
        img, (sy, sx) = ns['_do_paste_mask'](torch.from_numpy(masks[i:i + 1, None]),
                                             torch.from_numpy(pboxes[i:i + 1]), 50, 70, True)
        pasted[i][sy, sx] = (img[0] >= 0.5).numpy()
    save('paste_masks', masks)
    save('paste_boxes', pboxes)
    save('paste_out', pasted)


if __name__ == '__main__':
    main()
