#pragma once
// A job replayed in pieces: each piece covers a contiguous range of the job's
// layers (and reads only those), possibly on another rank; the pieces' results
// are put back together in layer order. Blocks are replayed independently
// (random streams per layer and head, calibration per layer), so the whole
// equals the job replayed in one go.
#include <vector>

#include "kvlab/distributed/wire.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::distributed {

// Layers of piece `piece` of `pieces` (contiguous, sizes differing by at most
// one; empty when there are more pieces than layers).
std::vector<int> piece_layers(const std::vector<int>& layers, int piece, int pieces);

// What a piece's record carries to be put back together: its blocks and
// replay settings, error and timing (not its summaries: they are recomputed).
void encode_piece(ByteWriter& w, const JobRecord& piece);
JobRecord decode_piece(ByteReader& r);

// The job's record from its pieces, given in layer order: blocks
// concatenated, replay seconds summed, the first failing piece's error,
// summaries computed over all blocks. Timing: the longest piece's batch.
JobRecord assemble_pieces(const JobIdentity& identity, std::vector<JobRecord>&& pieces);

}  // namespace kvlab::distributed
