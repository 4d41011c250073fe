#include "kvlab/compressors/compressor.hpp"

#include "kvlab/core/error.hpp"

namespace kvlab {

std::unique_ptr<CacheState> Compressor::new_state(const BlockContext&) const {
  fail("compressor '{}' keeps one state per layer; it has no per-block state", spec());
}

std::unique_ptr<LayerCacheState> Compressor::new_layer_state(const BlockContext&) const {
  fail("compressor '{}' keeps one state per block; use make_layer_state", spec());
}

void CacheReader::key_logits(ConstMatrixRef q, MatrixRef out) const {
  const CacheView v = view();
  out.noalias() = q * v.keys.transpose();
}

void CacheReader::changes_since(int since, CacheChanges& out) const {
  KVLAB_ASSERT(since >= 0 && since <= size());
  out.clear();
  out.add(0, size());
}

}  // namespace kvlab
