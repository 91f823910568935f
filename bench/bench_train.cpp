// Autograd workloads of the method: one ResNet50 training-mode forward+backward and one Hessian-vector
// product (double backward), at batch 8 and 224x224 with deterministic formula weights (speed only).
// Run: build/bench_train --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "core/autograd/engine.h"
#include "models/resnet50.h"
#include "ops/ops.h"
#include "quant/hessian.h"

namespace {

using namespace mpq;

struct Setup {
  std::unique_ptr<models::CnnModel> net = models::make_resnet50(models::ResNetLayout::torchvision);
  models::Batch batch;
  std::vector<Tensor> params;
  explicit Setup(int64_t n) {
    models::formula_init(*net);
    batch.images = models::formula_input(n, 224, 224);  // [n, 3, 224, 224]
    for (int64_t i = 0; i < n; ++i) batch.labels.push_back(int32_t((i * 97) % 1000));
    for (auto& [name, t] : net->parameters()) {
      t->set_requires_grad(true);
      params.push_back(*t);
    }
  }
  Tensor loss() { return ops::cross_entropy(net->forward(batch, /*training=*/true), batch.labels); }
};

void BM_ResNet50_forward_backward(benchmark::State& state) {
  Setup s(state.range(0));
  for (auto _ : state) {
    Tensor l = s.loss();
    auto g = autograd::grad({l}, s.params);
    benchmark::DoNotOptimize(g.data());
  }
  state.counters["images/s"] =
      benchmark::Counter(double(state.range(0)), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ResNet50_hvp(benchmark::State& state) {
  Setup s(state.range(0));
  std::vector<Tensor> v;
  for (size_t i = 0; i < s.params.size(); ++i) v.push_back(quant::rademacher(s.params[i].shape(), i + 1));
  for (auto _ : state) {
    auto hv = autograd::hvp(s.loss(), s.params, v);
    benchmark::DoNotOptimize(hv.data());
  }
}

}  // namespace

BENCHMARK(BM_ResNet50_forward_backward)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_ResNet50_hvp)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_MAIN();
