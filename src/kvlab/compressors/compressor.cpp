#include "kvlab/compressors/compressor.hpp"

namespace kvlab {

void CacheState::key_logits(ConstMatrixRef q, MatrixRef out) const {
  const CacheView v = view();
  out.noalias() = q * v.keys.transpose();
}

}  // namespace kvlab
