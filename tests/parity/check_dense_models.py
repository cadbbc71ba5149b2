#!/usr/bin/python3
"""Checks internimage-predict's Mask R-CNN-T and UperNet-T against the official pipelines.

A manual check (it needs source checkouts and takes a few minutes), complementing the stage
fixtures of make_dense_fixtures.py with whole-model runs:
  1. builds random weights for both models in the official checkpoint layout
     ({'meta': ..., 'state_dict': ...}, the file internimage-predict --weights reads strictly);
  2. runs the official forward passes on a seeded N x 3 x 128 x 160 batch: the official
     InternImage backbone (classification code, pure-PyTorch DCNv3, as
     tests/parity/make_internimage_fixtures.py runs it), and the official mmdet/mmseg/mmcv
     functions for everything after it (FPN.forward, RPNHead.forward_single,
     _get_bboxes_single, SingleRoIExtractor.forward with torchvision's aligned RoIAlign,
     ConvFCBBoxHead.forward, BBoxHead.get_bboxes, multiclass_nms, batched_nms, FCNMaskHead.forward,
     PPM.forward, UPerHead.psp_forward/_forward_feature/forward, cls_seg,
     EncoderDecoder.encode_decode), loaded at run time as make_dense_fixtures.load_defs does.
     Module containers are plain torch modules holding the official parameter names; mmcv's
     ConvModule is stood in for by conv -> bn -> ReLU;
  3. runs internimage-predict --weights on the same batch (--input mode, scale factor 1) and
     compares dets.npy, mask_probs.npy and logits.npy with the official outputs.

    /usr/bin/python3 tests/parity/check_dense_models.py --internimage /work/ref/InternImage \\
        --mmdet /tmp/mmdet-2.28 --mmcv /tmp/mmcv-1.5 --mmseg /tmp/mmseg-0.29 \\
        --predict build/bin/internimage-predict --work /tmp/dense-check
(mmseg 0.29: git archive 6ee6af1 mmseg of VCIP-RGBD/DFormer, see the spec.)
"""
import argparse
import os
import subprocess
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_dense_fixtures as mdf  # noqa: E402
import make_internimage_fixtures as mif  # noqa: E402


class ConvModuleStandIn(nn.Module):
    """mmcv ConvModule as the configs build it: conv, then bn (when normed), then ReLU."""

    def __init__(self, cin, cout, k, p, bn, relu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=p, bias=not bn)
        if bn:
            self.bn = nn.BatchNorm2d(cout)
        self.use_relu = relu

    def forward(self, x):
        x = self.conv(x)
        if hasattr(self, 'bn'):
            x = self.bn(x)
        return F.relu(x) if self.use_relu else x


def method_module(ns, cls, methods, **attrs):
    """An nn.Module (class `cls`) whose listed methods are the official ones."""
    m = cls()
    for k, v in attrs.items():
        setattr(m, k, v)
    return mdf.bind(ns, m, *methods)


def backbone(args):
    sys.path.insert(0, os.path.join(args.internimage, 'classification'))
    mif.install_stand_ins()
    intern_image = __import__('models.intern_image', fromlist=['InternImage'])
    net = intern_image.InternImage(core_op='DCNv3_pytorch', channels=64, depths=[4, 4, 18, 4],
                                   groups=[4, 8, 16, 32], num_classes=1000, mlp_ratio=4.0,
                                   drop_path_rate=0.0, offset_scale=1.0, post_norm=False,
                                   layer_scale=1.0)
    net.eval()
    return net


def backbone_state(net):
    # The dense checkpoints have no classifier.
    return {k: v for k, v in net.state_dict().items()
            if not (k.startswith('conv_head.') or k.startswith('head.'))}


def levels_of(net, x):
    return [lv.permute(0, 3, 1, 2).contiguous() for lv in net.forward_features_seq_out(x)]


def save_checkpoint(path, state, classes):
    torch.save({'meta': {'mmcv_version': '1.5.0', 'CLASSES': classes, 'config': 'random'},
                'state_dict': state}, path)


def run_predict(args, model, weights, x, out):
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, 'x.npy'), x.numpy())
    subprocess.run([args.predict, '--model', model, '--weights', weights, '--threads', '2',
                    '--input', os.path.join(out, 'x.npy'), '--output-dir', out], check=True)


def check_mask_rcnn(args, ns, x):
    torch.manual_seed(0)
    net = backbone(args)
    neck = nn.Module()
    neck.lateral_convs = nn.ModuleList(ConvModuleStandIn(c, 256, 1, 0, False, False)
                                       for c in [64, 128, 256, 512])
    neck.fpn_convs = nn.ModuleList(ConvModuleStandIn(256, 256, 3, 1, False, False) for _ in range(4))
    rpn = nn.Module()
    rpn.rpn_conv = nn.Conv2d(256, 256, 3, padding=1)
    rpn.rpn_cls = nn.Conv2d(256, 3, 1)
    rpn.rpn_reg = nn.Conv2d(256, 12, 1)
    bbox = nn.Module()
    bbox.fc_cls = nn.Linear(1024, 81)
    bbox.fc_reg = nn.Linear(1024, 320)
    bbox.shared_fcs = nn.ModuleList([nn.Linear(12544, 1024), nn.Linear(1024, 1024)])
    mask = nn.Module()
    mask.convs = nn.ModuleList(ConvModuleStandIn(256, 256, 3, 1, False, True) for _ in range(4))
    mask.upsample = nn.ConvTranspose2d(256, 256, 2, stride=2)
    mask.conv_logits = nn.Conv2d(256, 80, 1)
    heads = nn.Module()
    heads.neck, heads.rpn_head = neck, rpn
    heads.roi_head = nn.Module()
    heads.roi_head.bbox_head, heads.roi_head.mask_head = bbox, mask
    mif.randomize(net, 1)
    mif.randomize(heads, 2)
    with torch.no_grad():
        bbox.fc_cls.weight.mul_(4)  # spread the class scores so that detections pass 0.05
    state = {'backbone.' + k: v for k, v in backbone_state(net).items()}
    state.update(heads.state_dict())
    weights = os.path.join(args.work, 'mask_rcnn_t.pth')
    save_checkpoint(weights, state, tuple(f'c{i}' for i in range(80)))

    # ---- The official forward pass.
    fpn = method_module(ns, nn.Module, ['FPN.forward'], lateral_convs=neck.lateral_convs,
                        fpn_convs=neck.fpn_convs, in_channels=[64, 128, 256, 512], start_level=0,
                        backbone_end_level=4, num_outs=5, add_extra_convs=False,
                        relu_before_extra_convs=False, upsample_cfg=dict(mode='nearest'))
    rpn_head = method_module(ns, nn.Module, ['RPNHead.forward_single', 'RPNHead._get_bboxes_single',
                                             'RPNHead._bbox_post_process'],
                             rpn_conv=rpn.rpn_conv, rpn_cls=rpn.rpn_cls, rpn_reg=rpn.rpn_reg,
                             use_sigmoid_cls=True, bbox_coder=mdf.coder(ns, (1., 1., 1., 1.)),
                             test_cfg=mdf.AttrDict(nms_pre=1000, max_per_img=1000,
                                                   nms=dict(type='nms', iou_threshold=0.7),
                                                   min_bbox_size=0))
    gen = types.SimpleNamespace(center_offset=0., scale_major=True,
                                strides=[(s, s) for s in [4, 8, 16, 32, 64]])
    mdf.bind(ns, gen, 'AnchorGenerator.gen_single_level_base_anchors', 'AnchorGenerator._meshgrid',
             'AnchorGenerator.single_level_grid_priors')
    gen.base_anchors = [gen.gen_single_level_base_anchors(s, torch.Tensor([8]),
                                                          torch.Tensor([0.5, 1.0, 2.0]))
                        for s in [4, 8, 16, 32, 64]]

    def extractor(size):
        layers = nn.ModuleList(torchvision.ops.RoIAlign((size, size), 1.0 / s, 0, aligned=True)
                               for s in [4, 8, 16, 32])
        return method_module(ns, nn.Module, ['SingleRoIExtractor.forward',
                                             'SingleRoIExtractor.map_roi_levels'],
                             roi_layers=layers, out_channels=256, finest_scale=56)

    box_head = method_module(ns, nn.Module, ['ConvFCBBoxHead.forward', 'BBoxHead.get_bboxes'],
                             num_shared_convs=0, num_shared_fcs=2, with_avg_pool=False,
                             shared_fcs=bbox.shared_fcs, relu=nn.ReLU(), cls_convs=[], cls_fcs=[],
                             reg_convs=[], reg_fcs=[], with_cls=True, with_reg=True,
                             fc_cls=bbox.fc_cls, fc_reg=bbox.fc_reg, custom_cls_channels=False,
                             bbox_coder=mdf.coder(ns, (0.1, 0.1, 0.2, 0.2)))
    mask_head = method_module(ns, nn.Module, ['FCNMaskHead.forward'], convs=mask.convs,
                              upsample=mask.upsample, upsample_method='deconv', relu=nn.ReLU(),
                              conv_logits=mask.conv_logits)
    rcnn_cfg = mdf.AttrDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                            max_per_img=100)
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    with torch.no_grad():
        feats = fpn.forward(levels_of(net, x))
        outs = [rpn_head.forward_single(f) for f in feats]
        anchors = [gen.single_level_grid_priors(f.shape[2:], i, device='cpu')
                   for i, f in enumerate(feats)]
        proposals = [rpn_head._get_bboxes_single([o[0][i] for o in outs], [o[1][i] for o in outs],
                                                 None, anchors, dict(img_shape=(h, w, 3)), None)
                     for i in range(n)]
        rois = ns['bbox2roi'](proposals)
        cls_score, bbox_pred = box_head.forward(extractor(7).forward(feats[:4], rois))
        counts = [len(p) for p in proposals]
        dets, labels = [], []
        for r, c, b in zip(rois.split(counts), cls_score.split(counts), bbox_pred.split(counts)):
            d, l = box_head.get_bboxes(r, c, b, (h, w, 3), np.ones(4, np.float32), rescale=True,
                                       cfg=rcnn_cfg)
            dets.append(d)
            labels.append(l)
        mask_pred = mask_head.forward(extractor(14).forward(feats[:4], ns['bbox2roi'](dets)))
        probs = mask_pred.sigmoid()[torch.arange(mask_pred.shape[0]), torch.cat(labels)]
        probs = probs.split([len(d) for d in dets])

    # ---- Ours.
    out = os.path.join(args.work, 'mask_rcnn')
    run_predict(args, 'mask_rcnn_internimage_t_fpn_1x_coco', weights, x, out)
    ours = np.load(os.path.join(out, 'dets.npy'))
    our_masks = np.load(os.path.join(out, 'mask_probs.npy'))
    ok = True
    for i in range(n):
        official = torch.cat([dets[i], labels[i][:, None].float()], 1).numpy()
        mine = ours[i][ours[i][:, 4] >= 0]
        matched, worst_box, worst_score, worst_mask = 0, 0.0, 0.0, 0.0
        for j, row in enumerate(official):
            diff = np.abs(mine[:, :5] - row[:5]).max(1)
            diff[mine[:, 5] != row[5]] = np.inf
            k = int(diff.argmin()) if len(mine) else -1
            if k >= 0 and diff[k] < 0.05:
                matched += 1
                worst_box = max(worst_box, float(np.abs(mine[k, :4] - row[:4]).max()))
                worst_score = max(worst_score, float(abs(mine[k, 4] - row[4])))
                worst_mask = max(worst_mask, float(np.abs(our_masks[i, k] - probs[i][j].numpy()).max()))
        same_order = len(mine) == len(official) and np.array_equal(mine[:, 5], official[:, 5])
        print(f'mask_rcnn image {i}: official {len(official)} detections, ours {len(mine)}, '
              f'matched {matched}, same label order {same_order}, max |box| {worst_box:.2e}, '
              f'max |score| {worst_score:.2e}, max |mask prob| {worst_mask:.2e}')
        ok &= matched == len(official) == len(mine) and len(official) > 0
    return ok


def check_upernet(args, ns, x):
    torch.manual_seed(0)
    net = backbone(args)
    head = nn.Module()
    head.conv_seg = nn.Conv2d(512, 150, 1)

    class PPM(nn.ModuleList):
        align_corners = False
        forward = ns['PPM.forward']

    head.psp_modules = PPM(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModuleStandIn(512, 512, 1, 0, True, True))
                           for s in (1, 2, 3, 6))
    head.bottleneck = ConvModuleStandIn(512 + 4 * 512, 512, 3, 1, True, True)
    head.lateral_convs = nn.ModuleList(ConvModuleStandIn(c, 512, 1, 0, True, True) for c in [64, 128, 256])
    head.fpn_convs = nn.ModuleList(ConvModuleStandIn(512, 512, 3, 1, True, True) for _ in range(3))
    head.fpn_bottleneck = ConvModuleStandIn(4 * 512, 512, 3, 1, True, True)
    aux = nn.Module()
    aux.conv_seg = nn.Conv2d(256, 150, 1)
    aux.convs = nn.Sequential(ConvModuleStandIn(256, 256, 3, 1, True, True))
    mif.randomize(net, 3)
    mif.randomize(head, 4)
    mif.randomize(aux, 5)
    head.eval()
    state = {'backbone.' + k: v for k, v in backbone_state(net).items()}
    state.update({'decode_head.' + k: v for k, v in head.state_dict().items()})
    state.update({'auxiliary_head.' + k: v for k, v in aux.state_dict().items()})
    weights = os.path.join(args.work, 'upernet_t.pth')
    save_checkpoint(weights, state, tuple(f'c{i}' for i in range(150)))

    mdf.bind(ns, head, 'UPerHead.psp_forward', 'UPerHead._forward_feature', 'UPerHead.forward',
             'BaseDecodeHead._transform_inputs', 'BaseDecodeHead.cls_seg')
    head.in_index, head.input_transform, head.align_corners = [0, 1, 2, 3], 'multiple_select', False
    head.dropout = nn.Dropout2d(0.1).eval()
    segmentor = method_module(ns, nn.Module, ['EncoderDecoder.encode_decode'], align_corners=False)
    segmentor.extract_feat = lambda img: levels_of(net, img)
    segmentor._decode_head_forward_test = lambda feats, metas: head.forward(feats)
    with torch.no_grad():
        official = segmentor.encode_decode(x, None).numpy()

    out = os.path.join(args.work, 'upernet')
    run_predict(args, 'upernet_internimage_t_512_160k_ade20k', weights, x, out)
    ours = np.load(os.path.join(out, 'logits.npy'))
    err = float(np.abs(ours - official).max())
    scale = float(np.abs(official).max())
    same = float((ours.argmax(1) == official.argmax(1)).mean())
    print(f'upernet: logits {ours.shape}, max |ours - official| {err:.2e} (max |logit| {scale:.2f}), '
          f'argmax agreement {same:.5f}')
    return ours.shape == official.shape and err <= 1e-4 * scale


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for flag in ['--internimage', '--mmdet', '--mmcv', '--mmseg', '--predict', '--work']:
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ns = mdf.official(args)
    mdf.load_defs(os.path.join(args.mmdet, 'mmdet/core/bbox/transforms.py'), ['bbox2roi'], ns)
    mdf.load_defs(os.path.join(args.mmdet, 'mmdet/models/necks/fpn.py'), ['FPN.forward'], ns)
    mdf.load_defs(os.path.join(args.mmdet, 'mmdet/models/dense_heads/rpn_head.py'),
                  ['RPNHead.forward_single'], ns)
    mdf.load_defs(os.path.join(args.mmdet, 'mmdet/models/roi_heads/roi_extractors/'
                               'single_level_roi_extractor.py'), ['SingleRoIExtractor.forward'], ns)
    mdf.load_defs(os.path.join(args.mmdet, 'mmdet/models/roi_heads/bbox_heads/convfc_bbox_head.py'),
                  ['ConvFCBBoxHead.forward'], ns)
    mdf.load_defs(os.path.join(args.mmdet, 'mmdet/models/roi_heads/mask_heads/fcn_mask_head.py'),
                  ['FCNMaskHead.forward'], ns)
    seg = os.path.join(args.mmseg, 'mmseg')
    mdf.load_defs(os.path.join(seg, 'ops/wrappers.py'), ['resize'], ns)
    mdf.load_defs(os.path.join(seg, 'models/decode_heads/psp_head.py'), ['PPM.forward'], ns)
    mdf.load_defs(os.path.join(seg, 'models/decode_heads/uper_head.py'),
                  ['UPerHead.psp_forward', 'UPerHead._forward_feature', 'UPerHead.forward'], ns)
    mdf.load_defs(os.path.join(seg, 'models/decode_heads/decode_head.py'),
                  ['BaseDecodeHead._transform_inputs', 'BaseDecodeHead.cls_seg'], ns)
    mdf.load_defs(os.path.join(seg, 'models/segmentors/encoder_decoder.py'),
                  ['EncoderDecoder.encode_decode'], ns)
    torch.set_num_threads(2)
    x = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(7))
    ok = check_upernet(args, ns, x)
    ok = check_mask_rcnn(args, ns, x) and ok
    print('PASS' if ok else 'FAIL')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
