#include "models/mobilenetv2.h"

#include <array>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "models/io/safetensors.h"
#include "models/io/tflite.h"
#include "models/zoo.h"

namespace mpq::models {
namespace {

// (expansion t, output channels c, repeats n, first stride s) of the 7 stages.
struct StageCfg {
  int64_t t, c, n, s;
};
constexpr std::array<StageCfg, 7> kStages = {
    {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}}};
constexpr int64_t kDefaultSize = 224;
constexpr int64_t kLastChannels = 1280;

struct InvertedResidual {
  std::optional<ConvUnit> expand;  // 1x1 in -> hidden, ReLU6 (absent when t == 1)
  ConvUnit dw;                     // 3x3 depthwise, ReLU6
  ConvUnit project;                // 1x1 hidden -> out, linear
  bool residual = false;           // stride 1 and in == out
};

class MobileNetV2 final : public CnnModel {
 public:
  explicit MobileNetV2(MobileNetLayout layout)
      : layout_(layout),
        stem_(spec("features.0.0", "features.0.1", 3, 32, 3, 2, 1)),
        last_(spec("features.18.0", "features.18.1", 320, kLastChannels, 1, 1, 1)),
        classifier_("classifier.1", kLastChannels, layout == MobileNetLayout::tflite ? 1001 : 1000) {
    int64_t in = 32, idx = 1;
    for (const StageCfg& st : kStages) {
      for (int64_t r = 0; r < st.n; ++r, ++idx) {
        const std::string p = fmt::format("features.{}.conv.", idx);
        const int64_t stride = r == 0 ? st.s : 1, hidden = in * st.t;
        std::optional<ConvUnit> expand;
        int j = 0;  // index of the next Sequential entry
        if (st.t != 1) {
          expand.emplace(spec(p + "0.0", p + "0.1", in, hidden, 1, 1, 1));
          j = 1;
        }
        ConvUnit dw(spec(fmt::format("{}{}.0", p, j), fmt::format("{}{}.1", p, j), hidden, hidden, 3, stride, hidden));
        ConvUnit project(spec(fmt::format("{}{}", p, j + 1), fmt::format("{}{}", p, j + 2), hidden, st.c, 1, 1, 1));
        blocks_.push_back(
            InvertedResidual{std::move(expand), std::move(dw), std::move(project), stride == 1 && in == st.c});
        in = st.c;
      }
    }
  }

  std::string name() const override { return "mobilenetv2"; }
  std::string layout() const override { return layout_ == MobileNetLayout::tflite ? "tflite" : "torchvision"; }
  data::Preset preset() const override {
    return layout_ == MobileNetLayout::tflite ? data::Preset::TFLiteMobileNet : data::Preset::Torchvision;
  }
  int64_t num_classes() const override { return classifier_.out; }

  Tensor forward(const Batch& batch, bool training) override {
    const Tensor& x0 = batch.images;  // [N, 3, H, W]
    if (!(x0.defined() && x0.dim() == 4 && x0.size(1) == 3))
      fail("mobilenetv2: input must be [N, 3, H, W], got {}", x0.defined() ? shape_str(x0.shape()) : "undefined");
    const bool fold = fold_now(training);
    Tensor x = ops::relu6(stem_.forward(x0, training, fold));  // [N, 32, H/2, W/2]
    for (InvertedResidual& b : blocks_) {
      Tensor h = b.expand ? ops::relu6(b.expand->forward(x, training, fold)) : x;  // [N, hidden, h, w]
      h = ops::relu6(b.dw.forward(h, training, fold));                             // [N, hidden, h', w']
      h = b.project.forward(h, training, fold);                                    // [N, out, h', w']
      x = b.residual ? ops::add(h, x) : h;
    }
    x = ops::relu6(last_.forward(x, training, fold));     // [N, 1280, h, w]
    return classifier_.forward(ops::global_avg_pool(x));  // [N, 1280] -> [N, classes]; dropout is eval-identity
  }

  std::vector<CnnStep> inference_steps() const override {
    using Act = CnnStep::Act;
    CnnSteps s;
    int x = s.conv(stem_, 0, -1, Act::relu6);
    for (const InvertedResidual& b : blocks_) {
      const int h = b.expand ? s.conv(*b.expand, x, -1, Act::relu6) : x;
      const int d = s.conv(b.dw, h, -1, Act::relu6);
      x = s.conv(b.project, d, b.residual ? x : -1, Act::none);
    }
    x = s.conv(last_, x, -1, Act::relu6);
    s.linear(classifier_, s.global_avg_pool(x));
    return s.take();
  }

  NamedTensors named_tensors() override { return collect(false); }
  NamedTensors parameters() override { return collect(true); }

  std::vector<QuantLayer> quant_layers() const override {
    QuantGraph g;
    int64_t h = kDefaultSize;
    auto add = [&](const ConvUnit& u, std::vector<std::string> prod, int64_t in_h) {
      const LayerKind kind = u.spec.groups > 1 ? LayerKind::depthwise_conv : LayerKind::conv;
      g.add(u.spec.conv, kind, u.spec.conv + ".weight", u.macs(in_h, in_h), std::move(prod), u.geometry());
      return u.out_size(in_h);
    };
    h = add(stem_, {}, h);
    std::vector<std::string> cur = {stem_.spec.conv};
    for (const InvertedResidual& b : blocks_) {
      std::vector<std::string> dw_in = cur;
      if (b.expand) {
        add(*b.expand, cur, h);
        dw_in = {b.expand->spec.conv};
      }
      const int64_t h2 = add(b.dw, dw_in, h);
      add(b.project, {b.dw.spec.conv}, h2);
      std::vector<std::string> members = {b.project.spec.conv};
      if (b.residual) {
        members.insert(members.end(), cur.begin(), cur.end());
        g.residual(members);
      }
      cur = members;
      h = h2;
    }
    add(last_, cur, h);
    g.add(classifier_.name, LayerKind::linear, classifier_.name + ".weight", classifier_.in * classifier_.out,
          {last_.spec.conv});
    return g.finish();
  }

  // Every conv unit in execution order (the order of the TFLite CONV_2D / DEPTHWISE_CONV_2D operators).
  std::vector<ConvUnit*> units() {
    std::vector<ConvUnit*> u = {&stem_};
    for (InvertedResidual& b : blocks_) {
      if (b.expand) u.push_back(&*b.expand);
      u.push_back(&b.dw);
      u.push_back(&b.project);
    }
    u.push_back(&last_);
    return u;
  }

  MobileNetLayout layout_;
  ConvUnit stem_;
  std::vector<InvertedResidual> blocks_;
  ConvUnit last_;
  LinearUnit classifier_;

 private:
  ConvSpec spec(const std::string& conv, const std::string& bn, int64_t in, int64_t out, int64_t k, int64_t stride,
                int64_t groups) const {
    const bool tfl = layout_ == MobileNetLayout::tflite;
    return ConvSpec{conv, tfl ? "" : bn, in, out, k, stride, groups, tfl, tfl ? PadMode::tf_same : PadMode::symmetric,
                    1e-5f};
  }
  NamedTensors collect(bool params_only) {
    NamedTensors out;
    for (ConvUnit* u : units()) u->collect(out, params_only);
    classifier_.collect(out, params_only);
    return out;
  }
};

// ---- TFLite import ----

std::unique_ptr<CnnModel> load_tflite(const std::string& path) {
  const io::TfliteModel m = io::read_tflite(path);
  check(m.subgraphs.size() == 1, "tflite '{}': {} subgraphs, 1 expected", path, m.subgraphs.size());
  const io::TfliteSubgraph& sg = m.subgraphs[0];
  std::vector<const io::TfliteOperator*> convs;
  for (const io::TfliteOperator& op : sg.operators)
    if (op.opcode == io::tflite_op::CONV_2D || op.opcode == io::tflite_op::DEPTHWISE_CONV_2D) convs.push_back(&op);
  auto model = std::make_unique<MobileNetV2>(MobileNetLayout::tflite);
  std::vector<ConvUnit*> units = model->units();
  check(convs.size() == units.size() + 1,
        "tflite '{}': {} CONV_2D/DEPTHWISE_CONV_2D operators, {} expected for MobileNetV2 1.0", path, convs.size(),
        units.size() + 1);
  auto tensor_name = [&](int32_t t) { return sg.tensors.at(size_t(t)).name; };
  auto weights = [&](const io::TfliteOperator& op, size_t i) {
    check(op.inputs.size() == 3 && op.inputs[2] >= 0, "tflite '{}': conv operator #{} has no bias input", path, i);
    return std::pair{io::tflite_dequantize(m, sg, op.inputs[1]), io::tflite_dequantize(m, sg, op.inputs[2])};
  };
  for (size_t i = 0; i < units.size(); ++i) {
    ConvUnit& u = *units[i];
    const io::TfliteOperator& op = *convs[i];
    const bool dw = u.spec.groups > 1;
    const std::string wname = tensor_name(op.inputs.at(1));
    check(op.opcode == (dw ? io::tflite_op::DEPTHWISE_CONV_2D : io::tflite_op::CONV_2D),
          "tflite '{}': operator for '{}' (weights '{}') is {}, expected {}", path, u.spec.conv, wname,
          io::tflite_op_name(op.opcode), dw ? "DEPTHWISE_CONV_2D" : "CONV_2D");
    check(op.options.stride_h == u.spec.stride && op.options.stride_w == u.spec.stride,
          "tflite '{}': '{}' field 'stride' is {}x{}, expected {}", path, wname, op.options.stride_h,
          op.options.stride_w, u.spec.stride);
    check(op.options.padding == io::TflitePadding::same, "tflite '{}': '{}' field 'padding' is not SAME", path, wname);
    const bool is_project = i > 0 && units[i - 1]->spec.groups > 1;  // the 1x1 after a depthwise is linear
    const auto want_act = is_project ? io::TfliteActivation::none : io::TfliteActivation::relu6;
    check(op.options.activation == want_act, "tflite '{}': '{}' field 'fused_activation_function' is {}, expected {}",
          path, wname, io::tflite_activation_name(op.options.activation), io::tflite_activation_name(want_act));
    auto [w, b] = weights(op, i);
    const int64_t K = u.spec.kernel;
    if (dw) {
      if (!(w.shape() == Shape{1, K, K, u.spec.out}))
        fail("tflite '{}': tensor '{}' has shape {}, expected [1, {}, {}, {}]", path, wname, shape_str(w.shape()), K, K,
             u.spec.out);
      u.weight = w.permute_view({3, 0, 1, 2}).contiguous().clone();  // [1, K, K, C] -> [C, 1, K, K]
    } else {
      if (!(w.shape() == Shape{u.spec.out, K, K, u.spec.in}))
        fail("tflite '{}': tensor '{}' has shape {}, expected [{}, {}, {}, {}]", path, wname, shape_str(w.shape()),
             u.spec.out, K, K, u.spec.in);
      u.weight = w.permute_view({0, 3, 1, 2}).contiguous().clone();  // [O, K, K, I] -> [O, I, K, K]
    }
    if (!(b.shape() == Shape{u.spec.out}))
      fail("tflite '{}': bias '{}' has shape {}, expected [{}]", path, tensor_name(op.inputs[2]), shape_str(b.shape()),
           u.spec.out);
    u.bias = b.contiguous().clone();
  }
  // Classifier: 1x1 CONV_2D [1001, 1, 1, 1280] after the average pool.
  const io::TfliteOperator& cls = *convs.back();
  auto [w, b] = weights(cls, convs.size() - 1);
  LinearUnit& fc = model->classifier_;
  if (!(cls.opcode == io::tflite_op::CONV_2D && w.shape() == Shape{fc.out, 1, 1, fc.in}))
    fail("tflite '{}': classifier '{}' has shape {}, expected a CONV_2D [{}, 1, 1, {}]", path,
         tensor_name(cls.inputs[1]), shape_str(w.shape()), fc.out, fc.in);
  check(cls.options.activation == io::TfliteActivation::none, "tflite '{}': classifier has a fused activation", path);
  fc.weight = w.reshape_view({fc.out, fc.in}).clone();  // [1001, 1280]
  fc.bias = b.contiguous().clone();                     // [1001]
  return model;
}

std::unique_ptr<CnnModel> load_safetensors(const std::string& path) {
  const io::SafetensorsFile f = io::read_safetensors(path);
  std::string layout = safetensors_layout(f.metadata);
  if (layout.empty()) layout = f.tensors.contains("features.0.0.bias") ? "tflite" : "torchvision";
  check(layout == "tflite" || layout == "torchvision",
        "weights '{}': __metadata__ field 'layout' is '{}' (mobilenetv2 expects 'tflite' or 'torchvision')", path,
        layout);
  auto model = make_mobilenetv2(layout == "tflite" ? MobileNetLayout::tflite : MobileNetLayout::torchvision);
  auto& net = static_cast<MobileNetV2&>(*model);
  for (ConvUnit* u : net.units()) u->load(f.tensors, path);
  net.classifier_.load(f.tensors, path);
  return model;
}

}  // namespace

std::unique_ptr<CnnModel> make_mobilenetv2(MobileNetLayout layout) { return std::make_unique<MobileNetV2>(layout); }

std::unique_ptr<Model> load_mobilenetv2(const std::string& weights_path) {
  namespace fs = std::filesystem;
  check(fs::exists(weights_path), "mobilenetv2 weights '{}': file not found", weights_path);
  const std::string ext = fs::path(weights_path).extension().string();
  if (ext == ".tflite") return load_tflite(weights_path);
  if (ext == ".safetensors") return load_safetensors(weights_path);
  fail("mobilenetv2 weights '{}': unknown format (expected *.tflite or *.safetensors)", weights_path);
}

}  // namespace mpq::models
