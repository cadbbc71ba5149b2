#!/usr/bin/env python3
"""Writes the checkpoint files that models/checkpoint/*_test.cc read.

Usage: make_fixtures.py OUT_DIR

Everything is written with the local torch (Debian's 1.13 here) plus hand-written zip and
safetensors writers for the variants torch 1.13 cannot produce (zip64 records everywhere, data
beyond 4 GiB, the torch 2.x records). For each fixture whose weights the tests compare, the
script writes NAME.expected (one line per tensor: name, dtype, sizes, strides, storage offset,
byte offset and byte count in NAME.expected.bin) and NAME.expected.bin (each tensor's values,
contiguous, little endian). Exits with status 77 when torch or numpy cannot be imported, which
the tests turn into a skip.
"""

import argparse
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib

try:
    import numpy as np
    import torch
except ImportError as error:  # the C++ tests skip on exit status 77
    print(f"cannot import torch and numpy: {error}", file=sys.stderr)
    sys.exit(77)

SENTINEL = "PWNED_BY_CHECKPOINT"  # file a malicious pickle would create if it ever ran


def tiny_model():
    """The model the C++ tests rebuild with torch::nn: same names, shapes and dtypes."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 10),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
        model[1].num_batches_tracked.fill_(7)
    return model


def extra_tensors():
    """Every supported dtype, 0-d and empty tensors, and three views of one storage."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 8, generator=g)
    return collections.OrderedDict([
        ("extra.half", torch.randn(5, 7, generator=g).half()),
        ("extra.bf16", torch.randn(4, 6, generator=g).to(torch.bfloat16)),
        ("extra.float64", torch.randn(3, generator=g, dtype=torch.float64)),
        ("extra.int64", torch.arange(-5, 7, dtype=torch.int64).reshape(3, 4)),
        ("extra.int32", torch.arange(-3, 3, dtype=torch.int32)),
        ("extra.int16", torch.tensor([-32768, 0, 32767], dtype=torch.int16)),
        ("extra.int8", torch.tensor([-128, -1, 0, 127], dtype=torch.int8)),
        ("extra.uint8", torch.tensor([0, 1, 254, 255], dtype=torch.uint8)),
        ("extra.bool", torch.tensor([[True, False, True], [False, False, True]])),
        ("extra.scalar", torch.tensor(3.25)),
        ("extra.empty", torch.zeros(0, 3)),
        ("extra.base", base),
        ("extra.view", base[1:4, 2:6]),
        ("extra.transposed", base.t()),
    ])


def full_state_dict():
    state = tiny_model().state_dict()  # an OrderedDict with _metadata, as real checkpoints have
    state.update(extra_tensors())
    return state


def raw_bytes(tensor):
    flat = tensor.contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


def write_expected(path, state):
    """NAME.expected and NAME.expected.bin, the values the C++ round-trip tests compare."""
    blob = bytearray()
    with open(path + ".expected", "w") as lines:
        for name, tensor in state.items():
            data = raw_bytes(tensor)
            fields = [
                name,
                str(tensor.dtype).replace("torch.", ""),
                ",".join(map(str, tensor.shape)),
                ",".join(map(str, tensor.stride())),
                str(tensor.storage_offset()),
                str(len(blob)),
                str(len(data)),
            ]
            lines.write("\t".join(fields) + "\n")
            blob += data
    with open(path + ".expected.bin", "wb") as out:
        out.write(blob)


class Reduce:
    """An object that pickles as a call of `function(*args)`: how attacks are written."""

    def __init__(self, function, *args):
        self.function = function
        self.args = args

    def __reduce__(self):
        return (self.function, self.args)


def yacs_like_config():
    """A config pickled exactly as a yacs.config.CfgNode is (a dict subclass with attributes),
    which is what the official classification checkpoints store under 'config'. yacs is not
    installed here, so a stand-in class is registered under that module name."""
    import types

    class CfgNode(dict):
        def __init__(self, values=None):
            super().__init__(values or {})
            self.__dict__["__immutable__"] = False
            self.__dict__["__deprecated_keys__"] = set()

    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    if "yacs.config" not in sys.modules:
        sys.modules["yacs"] = types.ModuleType("yacs")
        sys.modules["yacs.config"] = types.ModuleType("yacs.config")
        sys.modules["yacs.config"].CfgNode = CfgNode
    node = sys.modules["yacs.config"].CfgNode
    return node({"MODEL": node({"TYPE": "intern_image", "NUM_CLASSES": 1000}),
                 "DATA": node({"IMG_SIZE": 224})})


def optimizer_state(state):
    names = [n for n, t in state.items() if t.is_floating_point()][:3]
    return {
        "state": {i: {"step": 10, "exp_avg": torch.full_like(state[n].float(), 0.5),
                      "exp_avg_sq": torch.full_like(state[n].float(), 0.25)}
                  for i, n in enumerate(names)},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.05,
                          "params": list(range(len(names)))}],
    }


# ---- zip writing by hand (zip64 everywhere, gaps) --------------------------------------------

def write_zip(path, records, gap=0):
    """Writes stored `records` [(name, bytes)] with zip64 sizes and offsets in every header.

    `gap` zero bytes (a sparse hole) come before the first entry, which puts every offset beyond
    4 GiB when gap is large. The local headers carry a zip64 extra field with both sizes; the
    central headers store 0xFFFFFFFF and carry sizes and offset in their zip64 extra field.
    """
    with open(path, "wb") as out:
        out.seek(gap)
        central = []
        for name, data in records:
            name_bytes = name.encode()
            crc = zlib.crc32(data) & 0xFFFFFFFF
            offset = out.tell()
            extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc,
                                  0xFFFFFFFF, 0xFFFFFFFF, len(name_bytes), len(extra)))
            out.write(name_bytes + extra + data)
            central.append((name_bytes, crc, len(data), offset))
        cd_offset = out.tell()
        for name_bytes, crc, size, offset in central:
            extra = struct.pack("<HHQQQ", 1, 24, size, size, offset)
            out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                                  0xFFFFFFFF, 0xFFFFFFFF, len(name_bytes), len(extra), 0, 0, 0,
                                  0, 0xFFFFFFFF))
            out.write(name_bytes + extra)
        cd_size = out.tell() - cd_offset
        zip64_offset = out.tell()
        out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(central),
                              len(central), cd_size, cd_offset))
        out.write(struct.pack("<IIQI", 0x07064B50, 0, zip64_offset, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                              0xFFFFFFFF, 0))


def write_listing(path):
    """NAME.entries: what Python's zipfile sees in archive NAME (name, size, CRC-32 per line)."""
    with zipfile.ZipFile(path) as archive, open(path + ".entries", "w") as out:
        for info in archive.infolist():
            out.write(f"{info.filename}\t{info.file_size}\t{info.CRC}\n")


def zip_records(path):
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def sparse_files_work(directory):
    probe = os.path.join(directory, "sparse_probe")
    with open(probe, "wb") as out:
        out.seek(1 << 30)
        out.write(b"x")
    blocks = os.stat(probe).st_blocks * 512
    os.remove(probe)
    return blocks < (1 << 20)


# ---- a torch 2.x style archive, written without torch 2 --------------------------------------

class StorageStandIn:
    """Pickles as the persistent id torch.save writes for a storage."""

    def __init__(self, key, storage_type, data, numel):
        self.key, self.storage_type, self.data, self.numel = key, storage_type, data, numel


class Torch2Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageStandIn):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def _rebuild_tensor_v3(*args):  # only pickled by name, never called
    raise RuntimeError("not called")


def write_torch2_archive(path, items, byteorder="little"):
    """A torch.save-like archive with the records torch 2.x adds (byteorder, serialization id)
    and the rebuild forms it can write: _rebuild_tensor_v3 over an UntypedStorage, and
    _rebuild_tensor_v2 with its seventh (metadata) argument. `items` maps name -> (tensor, form).
    Returns the state dict the C++ reader should see."""
    if not hasattr(torch._utils, "_rebuild_tensor_v3"):
        _rebuild_tensor_v3.__module__ = "torch._utils"
        torch._utils._rebuild_tensor_v3 = _rebuild_tensor_v3
    storages, state, expected = [], collections.OrderedDict(), collections.OrderedDict()
    for name, (tensor, form) in items.items():
        key = str(len(storages))
        data = raw_bytes(tensor)
        if form == "v3":
            storage = StorageStandIn(key, torch.UntypedStorage, data, len(data))
            args = (storage, 0, tuple(tensor.shape), tensor.stride(), False,
                    collections.OrderedDict(), tensor.dtype)
            state[name] = Reduce(torch._utils._rebuild_tensor_v3, *args)
        else:
            storage_type = {torch.float32: torch.FloatStorage,
                            torch.int64: torch.LongStorage}[tensor.dtype]
            storage = StorageStandIn(key, storage_type, data, tensor.numel())
            args = (storage, 0, tuple(tensor.shape), tensor.stride(), False,
                    collections.OrderedDict())
            if form is not None:
                args += (form,)
            state[name] = Reduce(torch._utils._rebuild_tensor_v2, *args)
        storages.append(storage)
        expected[name] = tensor
    buffer = io.BytesIO()
    Torch2Pickler(buffer, protocol=2).dump({"state_dict": state})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", byteorder)
        for storage in storages:
            archive.writestr("archive/data/" + storage.key, storage.data)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/.data/serialization_id", "1234567890")
    return expected


# ---- safetensors, written by hand --------------------------------------------------------------

SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def write_safetensors(path, tensors, metadata):
    header, blob = {}, bytearray()
    for name, tensor in tensors.items():
        data = raw_bytes(tensor)
        header[name] = {"dtype": SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    header["__metadata__"] = metadata
    text = json.dumps(header, ensure_ascii=True).encode()  # non-ASCII names become \u escapes
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + bytes(blob))


# ---- main ------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    out = parser.parse_args().out_dir
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)

    state = full_state_dict()
    model_state = tiny_model().state_dict()

    # Official classification layout: weights under 'model' beside training state, the yacs
    # config and other objects that real training scripts leave in checkpoints.
    classification = {
        "model": state,
        "optimizer": optimizer_state(state),
        "lr_scheduler": {"last_epoch": 3, "_step_count": 4},
        "max_accuracy": 81.25,
        "epoch": 3,
        "config": yacs_like_config(),
        "args": argparse.Namespace(model="internimage_t", drop_path=0.1, tags={"a", "b"}),
        "numpy": {"acc": np.float64(0.5), "array": np.arange(6).reshape(2, 3),
                  "dtype": np.dtype("float32")},
        "text": "ünïcødé ✓",
        "big": 2 ** 70,
        "negative": -123456789012,
        "bytes": b"\x00\x01binary\xff",
        "empty_bytes": b"",
        "slice": slice(1, 10, 2),
        "frozen": frozenset({1, 2}),
        "amp": None,
    }
    torch.save(classification, p("cls.pth"))
    write_expected(p("cls.pth"), state)

    # mmdetection/mmsegmentation layout: weights under 'state_dict' with a 'meta' beside them.
    detector_state = collections.OrderedDict(("backbone." + k, v) for k, v in model_state.items())
    detector_state["neck.lateral.weight"] = torch.ones(4, 8, 1, 1)
    detector_state["auxiliary_head.conv.weight"] = torch.ones(2, 2)
    torch.save({
        "meta": {"mmdet_version": "2.28.1", "CLASSES": ("person", "bicycle", "car"), "epoch": 12,
                 "iter": 100, "hook_msgs": {"best_score": np.float64(0.4)}},
        "state_dict": detector_state,
        "optimizer": optimizer_state(detector_state),
    }, p("det.pth"))
    write_expected(p("det.pth"), detector_state)

    torch.save(model_state, p("plain.pth"))
    write_expected(p("plain.pth"), model_state)

    torch.save({"model": collections.OrderedDict(("module." + k, v)
                                                 for k, v in model_state.items())}, p("ddp.pth"))

    # Pickle protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, EMPTY_SET, BINBYTES.
    torch.save({"state_dict": state,
                "meta": {"dataset_meta": {"classes": ["road", "sidewalk"]}, "set": {1, 2},
                         "bytes": b"\x00\xffraw"}},
               p("proto4.pth"), pickle_protocol=4)
    write_expected(p("proto4.pth"), state)

    # Tensors saved from a GPU carry location 'cuda:0'; they load on the CPU all the same.
    location_tag = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    torch.save(model_state, p("cuda.pth"))
    torch.serialization.location_tag = location_tag

    # Small enough to mutate thousands of times in the robustness test, yet with every kind of
    # record: views, a bool and an int64 storage, nested metadata, numpy placeholders.
    small = collections.OrderedDict([("w", torch.arange(6.0).reshape(2, 3)),
                                     ("w_t", None), ("flag", torch.tensor([True, False])),
                                     ("count", torch.tensor(5))])
    small["w_t"] = small["w"].t()
    torch.save({"meta": {"CLASSES": ("a", "b"), "score": np.float32(0.5)}, "state_dict": small},
               p("small.pth"))

    big = {"big": torch.randn(1024, 1024, generator=torch.Generator().manual_seed(2))}
    torch.save(big, p("large.pth"))
    write_expected(p("large.pth"), big)

    # Files other tools write, which the reader must refuse with a clear message.
    torch.save(model_state, p("legacy.pth"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(tiny_model()), p("script.pt"))
    with zipfile.ZipFile(p("deflated.pth"), "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in zip_records(p("plain.pth")):
            archive.writestr(name, data)
    sentinel = p(SENTINEL)
    torch.save({"state_dict": model_state, "x": Reduce(os.system, f"touch {sentinel}")},
               p("evil_system.pth"))
    torch.save({"state_dict": model_state,
                "x": Reduce(eval, f"open({sentinel!r}, 'w')")}, p("evil_eval.pth"))
    torch.save({"state_dict": model_state, "x": Reduce(subprocess.Popen, ["touch", sentinel])},
               p("evil_popen.pth"), pickle_protocol=4)
    torch.save({"state_dict": {"w": torch.ones(2), "acc": np.float32(1.0)}},
               p("placeholder_value.pth"))

    # The same records with zip64 extra fields in every header, and again beyond 4 GiB.
    records = zip_records(p("plain.pth"))
    write_zip(p("zip64_all.pth"), records)
    if sparse_files_work(out):
        write_zip(p("beyond_4gib.pth"), records, gap=(4 << 30) + 12345)
    for name in ("cls.pth", "plain.pth", "zip64_all.pth"):
        write_listing(p(name))

    # What torch 2.x writes: byteorder record, _rebuild_tensor_v3 over an UntypedStorage, and
    # _rebuild_tensor_v2 with a metadata argument.
    g = torch.Generator().manual_seed(3)
    torch2 = write_torch2_archive(p("torch2.pth"), collections.OrderedDict([
        ("v2", (torch.randn(2, 3, generator=g), None)),
        ("v2_metadata", (torch.arange(4, dtype=torch.int64), {"conj_bit": True})),
        ("v3_half", (torch.randn(3, 2, generator=g).half(), "v3")),
        ("v3_bf16", (torch.randn(5, generator=g).to(torch.bfloat16), "v3")),
    ]))
    write_expected(p("torch2.pth"), torch2)
    write_torch2_archive(p("torch2_neg.pth"), {"w": (torch.ones(2), {"neg_bit": True})})
    write_torch2_archive(p("big_endian.pth"), {"w": (torch.ones(2), None)}, byteorder="big")

    # safetensors: every dtype, names that need JSON escapes, DataParallel prefixes.
    tensors = collections.OrderedDict((k, v) for k, v in extra_tensors().items()
                                      if k not in ("extra.view", "extra.transposed"))
    tensors["module.conv.weight"] = torch.randn(2, 3, generator=g)
    tensors['quote"back\\slash'] = torch.tensor([1.5])
    tensors["ünï✓😀"] = torch.tensor([2, 3], dtype=torch.int32)
    write_safetensors(p("model.safetensors"), tensors, {"format": "pt", "note": "tab\there"})
    write_expected(p("model.safetensors"), collections.OrderedDict(
        (k[len("module."):] if k.startswith("module.") else k, v) for k, v in tensors.items()))


if __name__ == "__main__":
    main()
