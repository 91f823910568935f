#include "models/resnet50.h"

#include <array>
#include <filesystem>
#include <optional>

#include "core/autograd/node.h"
#include "core/error.h"
#include "models/io/safetensors.h"
#include "models/io/tfjs.h"
#include "models/zoo.h"

namespace mpq::models {
namespace {

constexpr std::array<int64_t, 4> kBlocks = {3, 4, 6, 3};
constexpr std::array<int64_t, 4> kWidths = {64, 128, 256, 512};
constexpr int64_t kClasses = 1000;
constexpr int64_t kDefaultSize = 224;

struct Bottleneck {
  ConvUnit conv1, conv2, conv3;
  std::optional<ConvUnit> downsample;  // downsample.0 (conv) + downsample.1 (BN)
};

class ResNet50 final : public CnnModel {
 public:
  ResNet50(ResNetLayout layout, float eps) : layout_(layout), stem_(stem_spec(layout, eps)), fc_("fc", 2048, kClasses) {
    const bool keras = layout == ResNetLayout::keras;
    int64_t in = 64;
    for (size_t s = 0; s < kBlocks.size(); ++s) {
      const int64_t w = kWidths[s], out = w * 4, stride = s == 0 ? 1 : 2;
      for (int64_t b = 0; b < kBlocks[s]; ++b) {
        const std::string p = fmt::format("layer{}.{}.", s + 1, b);
        const int64_t st = b == 0 ? stride : 1;
        auto spec = [&](const std::string& conv, const std::string& bn, int64_t i, int64_t o, int64_t k, int64_t str) {
          return ConvSpec{p + conv, p + bn, i, o, k, str, 1, keras, PadMode::symmetric, eps};
        };
        Bottleneck blk{ConvUnit(spec("conv1", "bn1", in, w, 1, keras ? st : 1)),
                       ConvUnit(spec("conv2", "bn2", w, w, 3, keras ? 1 : st)),
                       ConvUnit(spec("conv3", "bn3", w, out, 1, 1)), std::nullopt};
        if (b == 0) blk.downsample.emplace(spec("downsample.0", "downsample.1", in, out, 1, st));
        blocks_.push_back(std::move(blk));
        in = out;
      }
    }
  }

  std::string name() const override { return "resnet50"; }
  std::string layout() const override { return layout_ == ResNetLayout::keras ? "keras" : "torchvision"; }
  data::Preset preset() const override {
    return layout_ == ResNetLayout::keras ? data::Preset::KerasCaffe : data::Preset::Torchvision;
  }
  std::map<std::string, std::string> metadata() const override {
    auto m = CnnModel::metadata();
    m["bn_eps"] = fmt::format("{}", stem_.spec.eps);
    return m;
  }
  int64_t num_classes() const override { return kClasses; }

  Tensor forward(const Batch& batch, bool training) override {
    const Tensor& x0 = batch.images;  // [N, 3, H, W]
    if (!(x0.defined() && x0.dim() == 4 && x0.size(1) == 3))
      fail("resnet50: input must be [N, 3, H, W], got {}", x0.defined() ? shape_str(x0.shape()) : "undefined");
    const bool fold = fold_now(training);
    Tensor x = ops::relu(stem_.forward(x0, training, fold));  // [N, 64, H/2, W/2]
    ops::Pool2dParams pool{3, 3, 2, 2, 1, 1, 1, 1, false};
    x = ops::max_pool2d(x, pool);  // [N, 64, H/4, W/4]
    for (Bottleneck& b : blocks_) {
      Tensor o = ops::relu(b.conv1.forward(x, training, fold));  // [N, w, h, w]
      o = ops::relu(b.conv2.forward(o, training, fold));         // [N, w, h', w']
      o = b.conv3.forward(o, training, fold);                    // [N, 4w, h', w']
      const Tensor sc = b.downsample ? b.downsample->forward(x, training, fold) : x;
      x = ops::relu(ops::add(o, sc));
    }
    return fc_.forward(ops::global_avg_pool(x));  // [N, 2048] -> [N, 1000]
  }

  std::vector<CnnStep> inference_steps() const override {
    using Act = CnnStep::Act;
    CnnSteps s;
    int x = s.conv(stem_, 0, -1, Act::relu);
    x = s.max_pool(x, ops::Pool2dParams{3, 3, 2, 2, 1, 1, 1, 1, false});  // 3x3 / 2, pad 1
    for (const Bottleneck& b : blocks_) {
      const int o1 = s.conv(b.conv1, x, -1, Act::relu);
      const int o2 = s.conv(b.conv2, o1, -1, Act::relu);
      const int sc = b.downsample ? s.conv(*b.downsample, x, -1, Act::none) : x;
      x = s.conv(b.conv3, o2, sc, Act::relu);
    }
    s.linear(fc_, s.global_avg_pool(x));
    return s.take();
  }

  NamedTensors named_tensors() override { return collect(false); }
  NamedTensors parameters() override { return collect(true); }

  std::vector<QuantLayer> quant_layers() const override {
    QuantGraph g;
    int64_t h = kDefaultSize;
    g.add(stem_.spec.conv, LayerKind::conv, stem_.spec.conv + ".weight", stem_.macs(h, h), {}, stem_.geometry());
    h = stem_.out_size(h);
    h = (h + 2 - 3) / 2 + 1;                           // max pool 3x3/2 pad 1
    std::vector<std::string> cur = {stem_.spec.conv};  // producers of the current activation
    for (const Bottleneck& b : blocks_) {
      auto add = [&](const ConvUnit& u, std::vector<std::string> prod, int64_t in_h) {
        g.add(u.spec.conv, LayerKind::conv, u.spec.conv + ".weight", u.macs(in_h, in_h), std::move(prod), u.geometry());
        return u.out_size(in_h);
      };
      const int64_t h1 = add(b.conv1, cur, h);
      const int64_t h2 = add(b.conv2, {b.conv1.spec.conv}, h1);
      add(b.conv3, {b.conv2.spec.conv}, h2);
      std::vector<std::string> members = {b.conv3.spec.conv};
      if (b.downsample) {
        add(*b.downsample, cur, h);
        members.push_back(b.downsample->spec.conv);
      } else {
        members.insert(members.end(), cur.begin(), cur.end());
      }
      g.residual(members);
      cur = members;
      h = h2;
    }
    g.add("fc", LayerKind::linear, "fc.weight", fc_.in * fc_.out, cur);
    return g.finish();
  }

  ResNetLayout layout_;
  ConvUnit stem_;
  std::vector<Bottleneck> blocks_;
  LinearUnit fc_;

 private:
  static ConvSpec stem_spec(ResNetLayout layout, float eps) {
    return ConvSpec{"conv1", "bn1", 3, 64, 7, 2, 1, layout == ResNetLayout::keras, PadMode::symmetric, eps};
  }
  NamedTensors collect(bool params_only) {
    NamedTensors out;
    stem_.collect(out, params_only);
    for (Bottleneck& b : blocks_) {
      b.conv1.collect(out, params_only);
      b.conv2.collect(out, params_only);
      b.conv3.collect(out, params_only);
      if (b.downsample) b.downsample->collect(out, params_only);
    }
    fc_.collect(out, params_only);
    return out;
  }
};

// ---- Keras (TF.js) import ----

// Keras layer names of torchvision unit `u` in block (stage s: 0..3, block b).
struct KerasNames {
  std::string conv, bn;
};

const io::TfjsLayer& keras_layer(const io::TfjsModel& m, const std::string& name, const std::string& cls,
                                 const std::string& file) {
  const io::TfjsLayer* l = m.layer(name);
  check(l != nullptr, "tfjs model '{}': layer '{}' is missing", file, name);
  check(l->class_name == cls, "tfjs model '{}': layer '{}' is a {} but {} expected", file, name, l->class_name, cls);
  return *l;
}

void check_conv_config(const io::TfjsLayer& l, int64_t kernel, int64_t stride, const std::string& padding,
                       const std::string& file) {
  const auto& c = l.config;
  auto pair_is = [&](const char* key, int64_t v) {
    auto it = c.find(key);
    return it != c.end() && it->is_array() && it->size() == 2 && (*it)[0] == v && (*it)[1] == v;
  };
  check(pair_is("kernel_size", kernel), "tfjs model '{}': layer '{}' field 'kernel_size' is not [{}, {}]", file, l.name,
        kernel, kernel);
  check(pair_is("strides", stride),
        "tfjs model '{}': layer '{}' field 'strides' is not [{}, {}] (Keras ResNet50 v1 expected)", file, l.name,
        stride, stride);
  check(c.value("padding", std::string()) == padding, "tfjs model '{}': layer '{}' field 'padding' is not '{}'", file,
        l.name, padding);
}

float keras_eps(const io::TfjsLayer& l, const std::string& file) {
  auto it = l.config.find("epsilon");
  check(it != l.config.end() && it->is_number(), "tfjs model '{}': layer '{}' field 'epsilon' is missing", file,
        l.name);
  return it->get<float>();
}

// Copies one Keras conv (+BN) into unit u: kernel HWIO -> OIHW.
void load_keras_unit(ConvUnit& u, const io::TfjsModel& m, const KerasNames& k, const std::string& file) {
  const auto& S = u.spec;
  const Tensor& kern = io::require(m.weights, k.conv + "/kernel", {S.kernel, S.kernel, S.in, S.out}, file);
  u.weight = kern.permute_view({3, 2, 0, 1}).contiguous().clone();  // [O, I, KH, KW]
  u.bias = io::require(m.weights, k.conv + "/bias", {S.out}, file).clone();
  u.gamma = io::require(m.weights, k.bn + "/gamma", {S.out}, file).clone();
  u.beta = io::require(m.weights, k.bn + "/beta", {S.out}, file).clone();
  u.running_mean = io::require(m.weights, k.bn + "/moving_mean", {S.out}, file).clone();
  u.running_var = io::require(m.weights, k.bn + "/moving_variance", {S.out}, file).clone();
}

std::unique_ptr<CnnModel> load_keras_tfjs(const std::string& path) {
  const io::TfjsModel m = io::read_tfjs(path);
  // Stem: ZeroPadding2D(3) -> Conv2D 7x7/2 valid == symmetric padding 3.
  const io::TfjsLayer& pad = keras_layer(m, "conv1_pad", "ZeroPadding2D", path);
  check(pad.config.value("padding", nlohmann::json()) == nlohmann::json::parse("[[3,3],[3,3]]"),
        "tfjs model '{}': layer 'conv1_pad' field 'padding' is not [[3, 3], [3, 3]]", path);
  const io::TfjsLayer& pool_pad = keras_layer(m, "pool1_pad", "ZeroPadding2D", path);
  check(pool_pad.config.value("padding", nlohmann::json()) == nlohmann::json::parse("[[1,1],[1,1]]"),
        "tfjs model '{}': layer 'pool1_pad' field 'padding' is not [[1, 1], [1, 1]]", path);
  check_conv_config(keras_layer(m, "conv1", "Conv2D", path), 7, 2, "valid", path);
  const float eps = keras_eps(keras_layer(m, "bn_conv1", "BatchNormalization", path), path);
  auto model = std::make_unique<ResNet50>(ResNetLayout::keras, eps);
  load_keras_unit(model->stem_, m, {"conv1", "bn_conv1"}, path);
  size_t bi = 0;
  for (size_t s = 0; s < kBlocks.size(); ++s) {
    for (int64_t b = 0; b < kBlocks[s]; ++b, ++bi) {
      Bottleneck& blk = model->blocks_[bi];
      const std::string id = fmt::format("{}{}", s + 2, char('a' + b));
      auto unit = [&](ConvUnit& u, const std::string& branch, int64_t k, const std::string& padding) {
        const KerasNames n{"res" + id + "_" + branch, "bn" + id + "_" + branch};
        check_conv_config(keras_layer(m, n.conv, "Conv2D", path), k, u.spec.stride, padding, path);
        const float e = keras_eps(keras_layer(m, n.bn, "BatchNormalization", path), path);
        check(e == eps, "tfjs model '{}': layer '{}' epsilon {} differs from bn_conv1's {}", path, n.bn, e, eps);
        load_keras_unit(u, m, n, path);
      };
      unit(blk.conv1, "branch2a", 1, "valid");
      unit(blk.conv2, "branch2b", 3, "same");
      unit(blk.conv3, "branch2c", 1, "valid");
      if (blk.downsample) unit(*blk.downsample, "branch1", 1, "valid");
    }
  }
  keras_layer(m, "fc1000", "Dense", path);
  const Tensor& k = io::require(m.weights, "fc1000/kernel", {2048, kClasses}, path);  // [in, out]
  model->fc_.weight = k.transpose_view(0, 1).contiguous().clone();                    // [out, in]
  model->fc_.bias = io::require(m.weights, "fc1000/bias", {kClasses}, path).clone();
  return model;
}

std::unique_ptr<CnnModel> load_safetensors(const std::string& path) {
  const io::SafetensorsFile f = io::read_safetensors(path);
  std::string layout = safetensors_layout(f.metadata);
  if (layout.empty()) layout = f.tensors.contains("conv1.bias") ? "keras" : "torchvision";
  check(layout == "keras" || layout == "torchvision",
        "weights '{}': __metadata__ field 'layout' is '{}' (resnet50 expects 'keras' or 'torchvision')", path, layout);
  float eps = 0.f;
  if (auto it = f.metadata.find("bn_eps"); it != f.metadata.end()) {
    try {
      eps = std::stof(it->second);
    } catch (const std::exception&) {
      fail("weights '{}': __metadata__ field 'bn_eps' is not a number: '{}'", path, it->second);
    }
  }
  auto model = make_resnet50(layout == "keras" ? ResNetLayout::keras : ResNetLayout::torchvision, eps);
  auto& r = static_cast<ResNet50&>(*model);
  r.stem_.load(f.tensors, path);
  for (Bottleneck& b : r.blocks_) {
    b.conv1.load(f.tensors, path);
    b.conv2.load(f.tensors, path);
    b.conv3.load(f.tensors, path);
    if (b.downsample) b.downsample->load(f.tensors, path);
  }
  r.fc_.load(f.tensors, path);
  return model;
}

}  // namespace

std::unique_ptr<CnnModel> make_resnet50(ResNetLayout layout, float bn_eps) {
  if (bn_eps <= 0.f) bn_eps = layout == ResNetLayout::keras ? 1e-3f : 1e-5f;
  return std::make_unique<ResNet50>(layout, bn_eps);
}

std::unique_ptr<Model> load_resnet50(const std::string& weights_path) {
  namespace fs = std::filesystem;
  check(fs::exists(weights_path), "resnet50 weights '{}': file not found", weights_path);
  const std::string ext = fs::path(weights_path).extension().string();
  if (ext == ".json") return load_keras_tfjs(weights_path);
  if (ext == ".safetensors") return load_safetensors(weights_path);
  fail("resnet50 weights '{}': unknown format (expected model.json from TF.js or *.safetensors)", weights_path);
}

}  // namespace mpq::models
