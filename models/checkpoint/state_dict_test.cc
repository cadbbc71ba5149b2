#include "models/checkpoint/state_dict.h"

#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/checkpoint/checkpoint_error.h"
#include "models/checkpoint/testing/expect_tensor.h"
#include "models/checkpoint/testing/python_fixtures.h"
#include "models/checkpoint/torch_checkpoint.h"
#include "models/checkpoint/zip_reader.h"
#include "tests/testing/paths.h"

namespace iis::models::checkpoint {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// tiny_model() of make_fixtures.py: the same names, shapes and dtypes.
torch::nn::Sequential TinyModel(int64_t classes = 10) {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3)),
                               torch::nn::BatchNorm2d(8), torch::nn::ReLU(), torch::nn::Flatten(),
                               torch::nn::Linear(8 * 6 * 6, classes));
}

std::vector<std::string> Names(const StateDict& weights) {
  std::vector<std::string> names;
  for (const auto& entry : weights) names.push_back(entry.first);
  return names;
}

// Copies every parameter and buffer of `module`, to check later that nothing changed.
std::vector<at::Tensor> Snapshot(torch::nn::Module& module) {
  std::vector<at::Tensor> copies;
  for (const auto& item : module.named_parameters()) copies.push_back(item.value().clone());
  for (const auto& item : module.named_buffers()) copies.push_back(item.value().clone());
  return copies;
}

void ExpectUnchanged(torch::nn::Module& module, const std::vector<at::Tensor>& before) {
  const std::vector<at::Tensor> after = Snapshot(module);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(torch::equal(after[i], before[i])) << i;
}

class StateDictTest : public fixtures::PythonFixtureTest {
 protected:
  std::string LoadError(const std::string& path, const LoadOptions& options = {}) {
    try {
      LoadCheckpoint(path, options);
    } catch (const CheckpointError& error) {
      return error.what();
    }
    return "no error";
  }

  std::string ApplyError(torch::nn::Module& module, const StateDict& weights,
                         const ApplyOptions& options = {}) {
    try {
      ApplyStateDict(module, weights, options);
    } catch (const CheckpointError& error) {
      return error.what();
    }
    return "no error";
  }

  // Loads fixture `name` and compares every tensor with NAME.expected, in order.
  Checkpoint ExpectRoundTrip(const std::string& name) {
    SCOPED_TRACE(name);
    Checkpoint checkpoint = LoadCheckpoint(Fixture(name));
    const std::vector<fixtures::ExpectedTensor> expected = fixtures::ReadExpected(Fixture(name));
    EXPECT_FALSE(expected.empty());
    EXPECT_EQ(checkpoint.weights.size(), expected.size());
    for (size_t i = 0; i < std::min(expected.size(), checkpoint.weights.size()); ++i) {
      EXPECT_EQ(checkpoint.weights.entries()[i].first, expected[i].name);
      const at::Tensor* tensor = checkpoint.weights.Find(expected[i].name);
      EXPECT_NE(tensor, nullptr) << expected[i].name;
      if (tensor != nullptr) fixtures::ExpectSameTensor(*tensor, expected[i]);
    }
    return checkpoint;
  }
};

TEST_F(StateDictTest, RoundTripsEveryDtypeAndViewExactly) {
  const Checkpoint checkpoint = ExpectRoundTrip("cls.pth");
  EXPECT_EQ(checkpoint.format, CheckpointFormat::kTorchZip);
  EXPECT_EQ(checkpoint.weights_key, "model");
  EXPECT_EQ(checkpoint.weights.source(), Fixture("cls.pth"));
  // Views saved together still share one storage.
  const at::Tensor& base = *checkpoint.weights.Find("extra.base");
  EXPECT_TRUE(checkpoint.weights.Find("extra.view")->is_alias_of(base));
  EXPECT_TRUE(checkpoint.weights.Find("extra.transposed")->is_alias_of(base));
  EXPECT_FALSE(checkpoint.weights.Find("extra.half")->is_alias_of(base));
}

TEST_F(StateDictTest, RoundTripsOtherLayoutsAndVersions) {
  for (const char* name : {"det.pth", "plain.pth", "proto4.pth", "large.pth", "torch2.pth"}) {
    ExpectRoundTrip(name);
  }
}

TEST_F(StateDictTest, PicksTheWeightsOfEachLayout) {
  const Checkpoint detector = LoadCheckpoint(Fixture("det.pth"));
  EXPECT_EQ(detector.weights_key, "state_dict");
  EXPECT_THAT(detector.classes, ElementsAre("person", "bicycle", "car"));

  const Checkpoint segmenter = LoadCheckpoint(Fixture("proto4.pth"));
  EXPECT_EQ(segmenter.weights_key, "state_dict");
  EXPECT_THAT(segmenter.classes, ElementsAre("road", "sidewalk"));

  const Checkpoint plain = LoadCheckpoint(Fixture("plain.pth"));
  EXPECT_EQ(plain.weights_key, "");
  EXPECT_TRUE(plain.classes.empty());

  // DataParallel's "module." prefix is dropped: the same names and values as plain.pth.
  const Checkpoint ddp = LoadCheckpoint(Fixture("ddp.pth"));
  EXPECT_EQ(Names(ddp.weights), Names(plain.weights));
  for (const auto& [name, tensor] : plain.weights) {
    EXPECT_TRUE(torch::equal(*ddp.weights.Find(name), tensor)) << name;
  }

  // Saved from a GPU ('cuda:0' locations): loads on the CPU all the same.
  const StateDict from_gpu = LoadStateDict(Fixture("cuda.pth"));
  ASSERT_EQ(Names(from_gpu), Names(plain.weights));
  for (const auto& [name, tensor] : plain.weights) {
    EXPECT_TRUE(from_gpu.Find(name)->device().is_cpu());
    EXPECT_TRUE(torch::equal(*from_gpu.Find(name), tensor)) << name;
  }
}

TEST_F(StateDictTest, LoadOptionsNameTheEntry) {
  LoadOptions options;
  options.state_dict_key = "lr_scheduler";
  EXPECT_THAT(LoadError(Fixture("cls.pth"), options),
              HasSubstr("entry 'last_epoch' in 'lr_scheduler' is a int, not a tensor"));
  options.state_dict_key = "nope";
  EXPECT_THAT(LoadError(Fixture("cls.pth"), options),
              HasSubstr("no top-level entry 'nope' (the entries are 'model', 'optimizer', "));
  options.state_dict_key = "epoch";
  EXPECT_THAT(LoadError(Fixture("cls.pth"), options),
              HasSubstr("entry 'epoch' is a int, expected a dict of tensors"));
}

TEST_F(StateDictTest, ReadsOnlyTheSelectedTensors) {
  // Corrupt one byte of an optimizer tensor and one of a model tensor: only the second matters.
  TorchArchive archive(Fixture("cls.pth"));
  const PickleValue* optimizer_state = archive.root().Find("optimizer")->Find("state");
  const std::string optimizer_key =
      optimizer_state->entries.at(0).second->Find("exp_avg")->tensor->storage->key;
  const std::string model_key =
      archive.root().Find("model")->Find("0.weight")->tensor->storage->key;
  ZipReader zip(Fixture("cls.pth"));
  const std::string bytes = testing_paths::ReadFileBytes(Fixture("cls.pth"));

  std::string corrupt = bytes;
  corrupt[zip.Find("cls/data/" + optimizer_key)->data_offset] ^= 0x40;
  const std::string path = ScratchDir() + "/cls.pth";
  fixtures::WriteFileBytes(path, corrupt);
  EXPECT_EQ(LoadStateDict(path).size(), LoadStateDict(Fixture("cls.pth")).size());

  corrupt = bytes;
  corrupt[zip.Find("cls/data/" + model_key)->data_offset] ^= 0x40;
  fixtures::WriteFileBytes(path, corrupt);
  EXPECT_THAT(LoadError(path), HasSubstr("fails its CRC-32 check"));
}

TEST_F(StateDictTest, RefusesCodeExecutionAndNamesTheGlobal) {
  EXPECT_EQ(LoadError(Fixture("evil_system.pth")),
            Fixture("evil_system.pth") +
                ": pickle asks for global 'posix.system', which a weights file has no reason to "
                "use; refusing to load");
  EXPECT_THAT(LoadError(Fixture("evil_eval.pth")),
              HasSubstr("pickle asks for global '__builtin__.eval'"));
  EXPECT_THAT(LoadError(Fixture("evil_popen.pth")),
              HasSubstr("pickle asks for global 'subprocess.Popen'"));
  EXPECT_FALSE(std::filesystem::exists(Fixture("PWNED_BY_CHECKPOINT")));
}

TEST_F(StateDictTest, RefusesOtherFormatsWithAHint) {
  EXPECT_THAT(LoadError(Fixture("placeholder_value.pth")),
              HasSubstr("entry 'acc' in 'state_dict' is a 'numpy.core.multiarray.scalar' "
                        "object, not a tensor"));
  EXPECT_THAT(LoadError(Fixture("legacy.pth")), HasSubstr("legacy torch.save file"));
  EXPECT_THAT(LoadError(Fixture("script.pt")), HasSubstr("TorchScript archive"));
  EXPECT_THAT(LoadError(Fixture("big_endian.pth")), HasSubstr("byte order 'big'"));
  EXPECT_THAT(LoadError(Fixture("torch2_neg.pth")), HasSubstr("negated view (neg_bit)"));
  EXPECT_THAT(LoadError(Fixture("deflated.pth")), HasSubstr("is compressed"));

  const std::string text = ScratchDir() + "/notes.txt";
  fixtures::WriteFileBytes(text, "hello, world");
  EXPECT_THAT(LoadError(text),
              HasSubstr(": not a checkpoint: expected a torch.save zip archive (starting with "
                        "\"PK\") or a .safetensors file (an 8-byte length, then '{'), but the "
                        "file starts with 68 65 6c"));
  const std::string empty = ScratchDir() + "/empty.pth";
  fixtures::WriteFileBytes(empty, "");
  EXPECT_THAT(LoadError(empty), HasSubstr("(it is empty)"));
  EXPECT_THAT(LoadError(ScratchDir() + "/missing.pth"),
              HasSubstr("missing.pth: cannot open: No such file or directory"));
  EXPECT_THAT(LoadError(ScratchDir()), HasSubstr(": not a regular file"));
}

TEST_F(StateDictTest, AppliesEveryParameterAndBuffer) {
  torch::nn::Sequential model = TinyModel();
  const StateDict weights = LoadStateDict(Fixture("plain.pth"));
  const ApplyReport report = ApplyStateDict(*model, weights);
  EXPECT_EQ(report.loaded, 9);  // 2 conv + 5 batch norm + 2 linear
  EXPECT_EQ(report.skipped, 0);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.unexpected.empty());
  for (const auto& item : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), *weights.Find(item.key()))) << item.key();
  }
  for (const auto& item : model->named_buffers()) {
    EXPECT_TRUE(torch::equal(item.value(), *weights.Find(item.key()))) << item.key();
  }
  EXPECT_EQ(model[1]->as<torch::nn::BatchNorm2d>()->num_batches_tracked.item<int64_t>(), 7);
}

TEST_F(StateDictTest, ConvertsHalfAndBfloat16IntoFloat) {
  const StateDict weights = LoadStateDict(Fixture("cls.pth"));
  std::vector<std::pair<std::string, at::Tensor>> targets = {{"extra.half", torch::zeros({5, 7})},
                                                             {"extra.bf16", torch::zeros({4, 6})}};
  ApplyOptions options;
  options.strict = false;
  const ApplyReport report = ApplyStateDict(targets, weights, options);
  EXPECT_EQ(report.loaded, 2);
  EXPECT_EQ(report.unexpected.size(), weights.size() - 2);
  for (const auto& [name, target] : targets) {
    ASSERT_EQ(target.scalar_type(), at::kFloat);
    EXPECT_TRUE(torch::equal(target, weights.Find(name)->to(at::kFloat))) << name;
    EXPECT_GT(target.abs().sum().item<float>(), 0.0f) << name;
  }
}

TEST_F(StateDictTest, ShapeMismatchesAreListedAndNothingIsCopied) {
  torch::nn::Sequential model = TinyModel(/*classes=*/11);
  const std::vector<at::Tensor> before = Snapshot(*model);
  const std::string error = ApplyError(*model, LoadStateDict(Fixture("plain.pth")));
  EXPECT_THAT(error, StartsWith(Fixture("plain.pth") +
                                ": the weights do not match the model: 0 missing, 0 unexpected, "
                                "2 with a different shape or dtype kind"));
  EXPECT_THAT(error, HasSubstr("\n    4.weight: checkpoint Float [10, 288] vs model Float "
                               "[11, 288]"));
  EXPECT_THAT(error, HasSubstr("\n    4.bias: checkpoint Float [10] vs model Float [11]"));
  ExpectUnchanged(*model, before);
}

TEST_F(StateDictTest, MissingAndUnexpectedNamesComeInOneError) {
  torch::nn::Sequential model = TinyModel();
  const std::vector<at::Tensor> before = Snapshot(*model);
  // det.pth has the model under "backbone." plus a neck and an auxiliary head.
  const std::string error = ApplyError(*model, LoadStateDict(Fixture("det.pth")));
  EXPECT_THAT(error, HasSubstr("do not match the model: 9 missing, 11 unexpected, 0 with a "
                               "different shape or dtype kind"));
  EXPECT_THAT(error, HasSubstr("\n  missing from the checkpoint (9): 0.weight, 0.bias, "
                               "1.weight, 1.bias, 1.running_mean, 1.running_var, "
                               "1.num_batches_tracked, 4.weight, 4.bias"));
  EXPECT_THAT(error, HasSubstr("\n  unexpected (not in the model) (11): backbone.0.weight, "));
  EXPECT_THAT(error, HasSubstr(", ... and 1 more"));
  ExpectUnchanged(*model, before);

  ApplyOptions three;
  three.max_listed_names = 3;
  EXPECT_THAT(ApplyError(*model, LoadStateDict(Fixture("det.pth")), three),
              HasSubstr("(9): 0.weight, 0.bias, 1.weight, ... and 6 more"));
}

TEST_F(StateDictTest, SelectsRenamesAndIgnoresByPrefix) {
  const StateDict detector = LoadStateDict(Fixture("det.pth"));
  {
    torch::nn::Sequential model = TinyModel();
    ApplyOptions options;
    options.select_prefix = "backbone.";
    const ApplyReport report = ApplyStateDict(*model, detector, options);
    EXPECT_EQ(report.loaded, 9);
    EXPECT_EQ(report.skipped, 2);  // neck.lateral.weight, auxiliary_head.conv.weight
    EXPECT_TRUE(
        torch::equal(model->named_parameters()["0.weight"], *detector.Find("backbone.0.weight")));
  }
  {
    // A head that the checkpoint must not touch: ignored on both sides.
    torch::nn::Sequential model = TinyModel(/*classes=*/11);
    const at::Tensor head = model->named_parameters()["4.weight"].clone();
    ApplyOptions options;
    options.select_prefix = "backbone.";
    options.ignore_prefixes = {"4."};
    const ApplyReport report = ApplyStateDict(*model, detector, options);
    EXPECT_EQ(report.loaded, 7);
    EXPECT_EQ(report.skipped, 4);
    EXPECT_TRUE(report.missing.empty());
    EXPECT_TRUE(torch::equal(model->named_parameters()["4.weight"], head));
  }
  {
    std::vector<std::pair<std::string, at::Tensor>> targets = {
        {"conv.weight", torch::zeros({8, 3, 3, 3})}};
    ApplyOptions options;
    options.strict = false;
    options.select_prefix = "backbone.";
    options.rename = [](const std::string& name) {
      return name.rfind("0.", 0) == 0 ? "conv." + name.substr(2) : std::string();
    };
    const ApplyReport report = ApplyStateDict(targets, detector, options);
    EXPECT_EQ(report.loaded, 1);
    EXPECT_EQ(report.skipped, 9);  // 2 without the prefix, 7 renamed to ""
    EXPECT_THAT(report.unexpected, ElementsAre("conv.bias (checkpoint 'backbone.0.bias')"));
    EXPECT_TRUE(torch::equal(targets[0].second, *detector.Find("backbone.0.weight")));
  }
}

TEST_F(StateDictTest, NonStrictModeReportsInsteadOfFailing) {
  torch::nn::Sequential model = TinyModel();
  model->push_back(torch::nn::Linear(10, 2));  // "5.weight", "5.bias": not in the file
  ApplyOptions options;
  options.strict = false;
  const ApplyReport report = ApplyStateDict(*model, LoadStateDict(Fixture("plain.pth")), options);
  EXPECT_EQ(report.loaded, 9);
  EXPECT_THAT(report.missing, ElementsAre("5.weight", "5.bias"));
  EXPECT_TRUE(report.unexpected.empty());
  options.strict = true;
  EXPECT_THAT(ApplyError(*model, LoadStateDict(Fixture("plain.pth")), options),
              HasSubstr("2 missing, 0 unexpected"));
}

TEST_F(StateDictTest, RefusesDtypeKindChangesAndAmbiguousTargets) {
  const StateDict weights = LoadStateDict(Fixture("plain.pth"));
  ApplyOptions options;
  options.strict = false;
  std::vector<std::pair<std::string, at::Tensor>> targets = {
      {"1.num_batches_tracked", torch::zeros({})}};
  try {
    ApplyStateDict(targets, weights, options);
    ADD_FAILURE() << "an int64 value went into a float tensor";
  } catch (const CheckpointError& error) {
    EXPECT_THAT(error.what(), HasSubstr("1.num_batches_tracked: checkpoint Long [] vs model "
                                        "Float []"));
  }

  targets = {{"0.bias", torch::zeros({8})}, {"0.bias", torch::zeros({8})}};
  EXPECT_THROW(ApplyStateDict(targets, weights, options), CheckpointError);

  targets = {{"x", torch::zeros({8})}};
  options.rename = [](const std::string&) { return std::string("x"); };
  try {
    ApplyStateDict(targets, weights, options);
    ADD_FAILURE() << "two entries went into one tensor";
  } catch (const CheckpointError& error) {
    EXPECT_THAT(error.what(), HasSubstr("both map to model tensor 'x'"));
  }

  ApplyOptions zero;
  zero.max_listed_names = 0;
  EXPECT_THROW(ApplyStateDict(targets, weights, zero), CheckpointError);
}

TEST(StateDictClassTest, KeepsInsertionOrderAndRefusesDuplicates) {
  StateDict weights("made.pth");
  weights.Insert("b", torch::ones({1}));
  weights.Insert("a", torch::zeros({2}));
  EXPECT_THAT(Names(weights), ElementsAre("b", "a"));
  ASSERT_NE(weights.Find("a"), nullptr);
  EXPECT_EQ(weights.Find("a")->numel(), 2);
  EXPECT_EQ(weights.Find("c"), nullptr);
  try {
    weights.Insert("a", torch::ones({1}));
    ADD_FAILURE() << "a duplicate name was accepted";
  } catch (const CheckpointError& error) {
    EXPECT_STREQ(error.what(), "made.pth: the name 'a' appears twice");
  }
}

}  // namespace
}  // namespace iis::models::checkpoint
