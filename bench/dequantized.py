"""A float32 copy of a quantized GGUF file: the arithmetic control for the llama.cpp path.

llama.cpp multiplies quantized weights with activations it quantizes to 8 bits, so its
log-probabilities differ from the transformers path's (which dequantizes the same weights to
float32) by more than rounding. Run llama.cpp on this copy instead, whose tensors are the same
weights dequantized to float32 (llama.cpp then multiplies in float32), and any remaining
disagreement with transformers is harness's own: tokenization, the context/continuation
split, the reuse of the key/value cache. bench/llamacpp.py and tests/test_llamacpp.py use it.

    .venv/bin/python bench/dequantized.py IN.gguf OUT.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_f32_copy(source: Path, target: Path) -> Path:
    """Write `source` with every tensor dequantized to float32 and the same metadata (the file
    type key says F32); return `target`."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(source)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch)
    for field in reader.fields.values():
        # The writer adds the architecture and the GGUF.* header fields itself.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        if field.name == gguf.Keys.General.FILE_TYPE:
            writer.add_key_value(field.name, int(gguf.LlamaFileType.ALL_F32), kind)
            continue
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        writer.add_tensor(tensor.name, np.ascontiguousarray(weights, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    print(write_f32_copy(Path(sys.argv[1]), Path(sys.argv[2])))
