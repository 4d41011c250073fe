#pragma once
// One function per built-in method, each defined in its own file and
// registered explicitly in builtin_methods.cpp.
#include "kvlab/compressors/registry.hpp"

namespace kvlab::methods {

MethodInfo fp16();
MethodInfo uniform();
MethodInfo kcvt();
MethodInfo kivi();
MethodInfo h2o(), streaming(), snapkv(), pyramidkv(), qjl();  // droppers + QJL
MethodInfo gear(), gear_l(), outlier_quant(), gear_kcvt(), gear_l_kcvt(), kvquant();  // gear.cpp, kvquant.cpp

}  // namespace kvlab::methods
