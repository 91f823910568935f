// libFuzzer target: JPEG decode (libjpeg-turbo behind decode_jpeg) + the crop / resize / preprocessing every
// dataset applies. Only mpq::Error may escape; a decoded image must have the dimensions it claims.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "models/data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mpq::data;
  try {
    const Image img = decode_jpeg(data, size, "fuzz.JPEG");
    if (img.rgb.size() != size_t(img.width) * size_t(img.height) * 3) std::abort();
    const Image crop = crop_for_model(img, 224, 256);
    if (crop.width != 224 || crop.height != 224) std::abort();
    (void)preprocess(crop, Preset::TFLiteMobileNet);
  } catch (const mpq::Error&) {
  }
  return 0;
}
