// Level stacking (docs/MODELS.md "Level stacking"): CMS levels initialised from a level of a
// stored checkpoint. Engine-internal (torch); never include from a moc-read header.
#pragma once
#include "engine/models/classifier.h"

namespace hl::models {

// For every CMS level whose block config has an `init_from` entry, copies the parameters of level
// `level` of block `block` of the checkpoint (a last.pt / best.pt written by the trainer) into it.
// The source parameters are found under the same names with the block and level indices
// replaced, else under a cms block's (blocks.<i>.level<j>_...) or a hope block's
// (blocks.<i>.cms.level<j>_...) layout. Throws hl::SpecError naming model.blocks[b].levels[l].init_from.<field> when
// the file is missing or unreadable, the source level does not exist, or a shape differs.
void init_levels_from_checkpoints(ClassifierImpl& model);

}  // namespace hl::models
