"""Convert a Hugging Face checkpoint directory's float32 safetensors to bfloat16 (round to
nearest even), numpy + safetensors only:  python to_bf16.py SRC_DIR DST_DIR
Copies config.json (with "torch_dtype"/"dtype" set to bfloat16) and generation_config.json."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)


def bf16_bits(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


out = {}
with safe_open(str(src / "model.safetensors"), "np") as f:
    meta = f.metadata()
    for k in f.keys():
        out[k] = f.get_tensor(k)
# safetensors.numpy has no bfloat16 dtype: write the header by hand.
header, blobs, off = {}, [], 0
for k, v in out.items():
    b = bf16_bits(v).tobytes()
    header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
if meta:
    header["__metadata__"] = meta
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(dst / "model.safetensors", "wb") as fh:
    fh.write(len(h).to_bytes(8, "little"))
    fh.write(h)
    for b in blobs:
        fh.write(b)
cfg = json.loads((src / "config.json").read_text())
for key in ("torch_dtype", "dtype"):
    if key in cfg:
        cfg[key] = "bfloat16"
(dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
if (src / "generation_config.json").exists():
    shutil.copy(src / "generation_config.json", dst / "generation_config.json")
print(dst, sum(v.size for v in out.values()), "params")
