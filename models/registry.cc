#include "models/registry.h"

#include "models/labels.h"

namespace iis::models {
namespace {

Architecture Classification(const std::string& name, const std::string& variant, int size) {
  Architecture a;
  a.name = name;
  a.task = Task::kClassification;
  a.variant = variant;
  a.backbone = models::backbone::OfficialClassificationConfig(variant);
  a.num_classes = 1000;
  a.class_names = &ImageNetClassNames();
  a.input_size = size;
  return a;
}

Architecture Dense(const std::string& name, Task task, const std::string& variant, int scale_long,
                   int scale_short) {
  Architecture a;
  a.name = name;
  a.task = task;
  a.variant = variant;
  a.backbone = models::backbone::OfficialDenseConfig(variant);
  if (task == Task::kDetection) {
    a.num_classes = 80;
    a.class_names = &CocoClassNames();
  } else {
    a.num_classes = 150;
    a.class_names = &Ade20kClassNames();
  }
  a.scale_long = scale_long;
  a.scale_short = scale_short;
  a.default_max_batch_size = 2;
  return a;
}

std::vector<Architecture> Build() {
  std::vector<Architecture> v;
  // classification/configs/*.yaml (IMG_SIZE).
  v.push_back(Classification("internimage_t_1k_224", "t", 224));
  v.push_back(Classification("internimage_s_1k_224", "s", 224));
  v.push_back(Classification("internimage_b_1k_224", "b", 224));
  v.push_back(Classification("internimage_l_22kto1k_384", "l", 384));
  v.push_back(Classification("internimage_xl_22kto1k_384", "xl", 384));
  v.push_back(Classification("internimage_h_22kto1k_640", "h", 640));
  v.push_back(Classification("internimage_g_22kto1k_512", "g", 512));
  // detection/configs/coco/mask_rcnn_internimage_{t,s,b}_fpn_{1x,3x}_coco.py: img_scale (1333,
  // 800).
  for (const char* v8 : {"t", "s", "b"}) {
    for (const char* sched : {"1x", "3x"}) {
      v.push_back(Dense(std::string("mask_rcnn_internimage_") + v8 + "_fpn_" + sched + "_coco",
                        Task::kDetection, v8, 1333, 800));
    }
  }
  // segmentation/configs/ade20k/upernet_internimage_*: img_scale (2048, 512) or (2560, 640).
  for (const char* v8 : {"t", "s", "b"}) {
    v.push_back(Dense(std::string("upernet_internimage_") + v8 + "_512_160k_ade20k",
                      Task::kSegmentation, v8, 2048, 512));
  }
  for (const char* v8 : {"l", "xl"}) {
    v.push_back(Dense(std::string("upernet_internimage_") + v8 + "_640_160k_ade20k",
                      Task::kSegmentation, v8, 2560, 640));
  }
  return v;
}

}  // namespace

const std::vector<Architecture>& Architectures() {
  static const std::vector<Architecture> all = Build();
  return all;
}

const Architecture* FindArchitecture(std::string_view name) {
  for (const auto& a : Architectures()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::string ArchitectureNames(Task task) {
  std::string names;
  for (const auto& a : Architectures()) {
    if (a.task != task) continue;
    if (!names.empty()) names += ", ";
    names += a.name;
  }
  return names;
}

}  // namespace iis::models
