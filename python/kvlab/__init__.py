"""kvlab from Python: every compressor as a drop-in fake-quantizer for NumPy
and PyTorch code, and every replay as pandas DataFrames (docs/python.md).

    import kvlab
    kvlab.methods()                         # what `kvlab list` shows
    kvlab.canonical("kivi-2bit")            # 'kivi:bits=2,group=32,residual=128'
    r = kvlab.compress("kivi-2bit", keys, values, prompt_len=384)
    r.keys, r.values, r.present, r.bits     # reconstruction, mask, exact size
    st = kvlab.Compressor("kivi-2bit").new_state(head_dim=64, prompt_len=P, max_tokens=N)
    st.prefill(k[:P], v[:P]); st.append(k[P], v[P]); K, V, present = st.view()
    kvlab.run("data/shakespeare-a.kvdump.h5", ["kivi-2bit", "gear-2bit"])   # summary.csv as a DataFrame

The work is done by the same C++ core as the `kvlab` executable (the
extension _kvlab); errors in specs or arguments raise ValueError with kvlab's
message, problems with files raise OSError.
"""

from ._kvlab import (AttentionRule, Calibration, Compressor, State, __version__, canonical, git_revision, methods, presets,
                     tune_allocator)
from ._compress_result import CompressResult, compress
from ._tables import TABLES, run

__all__ = [
    "AttentionRule", "Calibration", "Compressor", "CompressResult", "State", "TABLES", "__version__", "canonical", "compress",
    "git_revision", "methods", "presets", "run", "tune_allocator",
]
