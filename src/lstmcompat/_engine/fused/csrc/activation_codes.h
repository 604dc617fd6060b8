// Generated from the activation table in _acts.py by tools/gen_activation_codes.py:
// do not edit (test_activation_table.py checks that it is current).
#pragma once

namespace lstmcompat {
namespace act {

// Codes of act_f / act_g (activations.h).
constexpr int kLinear = 0;
constexpr int kTanh = 1;
constexpr int kSigmoid = 2;
constexpr int kHardSigmoid = 3;
constexpr int kRelu = 4;
constexpr int kSoftsign = 5;
constexpr int kExponential = 6;
constexpr int kElu = 7;
constexpr int kSelu = 8;
constexpr int kSwish = 9;
constexpr int kKeras3HardSigmoid = 10;
constexpr int kCount = 11;

// Constants of their formulas.
constexpr double kSeluAlpha = 1.6732632423543772;
constexpr double kSeluScale = 1.0507009873554805;

}  // namespace act
}  // namespace lstmcompat
