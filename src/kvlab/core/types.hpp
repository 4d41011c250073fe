#pragma once
// Tensor aliases used throughout kvlab. Every matrix is row-major with tokens as
// rows and channels as columns: a block's keys are [T × d].
#include <Eigen/Core>
#include <cstdint>
#include <vector>

namespace kvlab {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowVector = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using Vector = Eigen::VectorXf;
using MatrixRef = Eigen::Ref<Matrix>;
using ConstMatrixRef = Eigen::Ref<const Matrix>;
using ConstRowRef = Eigen::Ref<const RowVector>;

// Position mask over cached tokens: 1 = present in the cache, 0 = evicted.
using PresentMask = std::vector<std::uint8_t>;

}  // namespace kvlab
