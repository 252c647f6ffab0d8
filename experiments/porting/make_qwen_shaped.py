"""Write a random Qwen2 checkpoint of any shape in bfloat16, numpy only, one tensor at a time
(for porting memory measurements; no licence issue, the weights are random):

    python make_qwen_shaped.py OUT_DIR [--hidden 2048 --intermediate 11008 --layers 36
                                         --heads 16 --kv-heads 2 --vocab 151936 --shards 1]

Defaults are Qwen2.5-3B's shapes. Key names and config fields follow transformers' Qwen2 layout
(tied embeddings, q/k/v biases), as in ../shared/data/qwen2-tiny/make_tiny_qwen2_numpy.py."""

import argparse
import json
from pathlib import Path

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--hidden", type=int, default=2048)
p.add_argument("--intermediate", type=int, default=11008)
p.add_argument("--layers", type=int, default=36)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=2)
p.add_argument("--vocab", type=int, default=151936)
p.add_argument("--shards", type=int, default=1)
a = p.parse_args()
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
H, I, L, V = a.hidden, a.intermediate, a.layers, a.vocab
hd = H // a.heads
shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
for i in range(L):
    q = f"model.layers.{i}."
    shapes.update({
        q + "input_layernorm.weight": (H,), q + "post_attention_layernorm.weight": (H,),
        q + "self_attn.q_proj.weight": (a.heads * hd, H), q + "self_attn.q_proj.bias": (a.heads * hd,),
        q + "self_attn.k_proj.weight": (a.kv_heads * hd, H), q + "self_attn.k_proj.bias": (a.kv_heads * hd,),
        q + "self_attn.v_proj.weight": (a.kv_heads * hd, H), q + "self_attn.v_proj.bias": (a.kv_heads * hd,),
        q + "self_attn.o_proj.weight": (H, a.heads * hd),
        q + "mlp.gate_proj.weight": (I, H), q + "mlp.up_proj.weight": (I, H), q + "mlp.down_proj.weight": (H, I),
    })
names = list(shapes)
per = -(-len(names) // a.shards)
rs = np.random.RandomState(0)
weight_map = {}
for s in range(a.shards):
    chunk = names[s * per:(s + 1) * per]
    fname = "model.safetensors" if a.shards == 1 else f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
    header, off = {}, 0
    for k in chunk:
        n = int(np.prod(shapes[k])) * 2
        header[k] = {"dtype": "BF16", "shape": list(shapes[k]), "data_offsets": [off, off + n]}
        off += n
        weight_map[k] = fname
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(out / fname, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little"))
        fh.write(h)
        for k in chunk:
            shape = shapes[k]
            rows = shape[0]
            step = max(1, (1 << 24) // max(1, int(np.prod(shape[1:]))))
            for r in range(0, rows, step):
                sub = (min(step, rows - r),) + tuple(shape[1:])
                x = np.ones(sub, np.float32) if k.endswith("norm.weight") else (rs.randn(*sub) * 0.02).astype(np.float32)
                u = x.view(np.uint32).astype(np.uint64)
                fh.write(((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes())
if a.shards > 1:
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
cfg = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": V, "hidden_size": H,
    "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": a.heads,
    "num_key_value_heads": a.kv_heads, "hidden_act": "silu", "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
}
(out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
print(out, sum(int(np.prod(s)) for s in shapes.values()), "params")
