#include "context.hpp"

#include "kvlab/core/error.hpp"

namespace kvlab::python {

BlockContext make_context(const ContextArgs& a) {
  if (a.head_dim < 1) fail("head_dim must be positive, found {}", a.head_dim);
  if (a.num_kv_heads < 1) fail("num_kv_heads must be positive, found {}", a.num_kv_heads);
  if (a.group_size < 1) fail("group_size (query heads per kv head) must be positive, found {}", a.group_size);
  if (a.num_layers < 1) fail("num_layers must be positive, found {}", a.num_layers);
  if (a.layer < 0 || a.layer >= a.num_layers)
    fail("layer {} is out of range (num_layers = {}: layers 0..{})", a.layer, a.num_layers, a.num_layers - 1);
  if (a.prompt_len < 1) fail("prompt_len must be positive (the prefill holds at least one token), found {}", a.prompt_len);
  if (a.max_tokens < a.prompt_len)
    fail("max_tokens ({}) must be at least prompt_len ({})", a.max_tokens, a.prompt_len);
  BlockContext ctx;
  ctx.layer = a.layer;
  ctx.num_layers = a.num_layers;
  ctx.num_kv_heads = a.num_kv_heads;
  ctx.head_dim = a.head_dim;
  ctx.group_size = a.group_size;
  ctx.prompt_len = a.prompt_len;
  ctx.max_tokens = a.max_tokens;
  ctx.seed = a.seed;
  ctx.attention = a.attention;
  if (a.rope_theta) {
    if (!(*a.rope_theta > 0)) fail("rope_theta must be a positive number, found {}", *a.rope_theta);
    ctx.rope = RopeInfo{*a.rope_theta, parse_rope_style(a.rope_style.value_or("none"))};
  } else if (a.rope_style) {
    parse_rope_style(*a.rope_style);  // an unknown style is an error even without a theta
    fail("rope_style '{}' needs rope_theta (the RoPE base, e.g. 10000.0)", *a.rope_style);
  }
  return ctx;
}

void check_needs(const Compressor& compressor, const BlockContext& ctx, bool have_queries) {
  if (compressor.needs_queries() && !have_queries)
    fail("compressor '{}' scores tokens by attention and needs queries (pass queries=)", compressor.spec());
  if (compressor.needs_rope() && !ctx.rope)
    fail("compressor '{}' undoes RoPE and needs rope_theta= and rope_style= ('neox' or 'gptj')",
         compressor.spec());
}

}  // namespace kvlab::python
