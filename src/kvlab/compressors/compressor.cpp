#include "kvlab/compressors/compressor.hpp"

namespace kvlab {

void CacheState::key_logits(ConstRowRef q, Eigen::Ref<RowVector> out) const {
  const CacheView v = view();
  out.noalias() = q * v.keys.transpose();
}

}  // namespace kvlab
