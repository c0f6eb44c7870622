"""Tiny random configs of the model families maseir exports, and inputs for them.

Each family is a config folder (``config.json`` only) that ``maseir export
FOLDER --random-init --task TASK`` reads, and the transformers model the
same seed builds from it (the reference every lowering is compared with).
Hidden sizes 32, 2 layers: an export takes a second or two.
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 100
PAD = 99  # GPT-2's and Llama's eos_token_id here, so the pad token the export picks is one the inputs use


def roberta_config():
    from transformers import RobertaConfig
    return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=VOCAB, max_position_embeddings=66, pad_token_id=1)


def distilbert_config():
    from transformers import DistilBertConfig
    return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=VOCAB, max_position_embeddings=64)


def gpt2_config():
    """GPT-2 as its default config has it (no pad token, cache on), at a tiny size."""
    from transformers import GPT2Config
    return GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=64,
                      bos_token_id=PAD, eos_token_id=PAD)


def llama_config():
    """A Llama-shaped decoder: rotary embeddings, RMSNorm, SiLU-gated MLP, grouped-query attention."""
    from transformers import LlamaConfig
    return LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=64, vocab_size=VOCAB, max_position_embeddings=64,
                       bos_token_id=0, eos_token_id=PAD)


def vit_config():
    from transformers import ViTConfig
    return ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     image_size=32, patch_size=8, num_labels=3)


def resnet_config():
    from transformers import ResNetConfig
    return ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)


CONFIGS = {"roberta": roberta_config, "distilbert": distilbert_config, "gpt2": gpt2_config, "llama": llama_config, "vit": vit_config,
           "resnet": resnet_config}
IMAGE_SIZE = {"vit": 32, "resnet": 224}  # ResNetConfig names no image size: the export uses 224


def config_folder(root: Path, family: str) -> Path:
    folder = Path(root) / family
    CONFIGS[family]().save_pretrained(folder)
    return folder


def reference_model(folder: Path, task: str, seed: int = 0):
    """The transformers model ``maseir export FOLDER --random-init --seed SEED`` exports, built the same
    way (seeded from_config), with the pad token the export gives a pooling classifier that lacks one."""
    import transformers
    from transformers import AutoConfig
    auto = {"sequence-classification": transformers.AutoModelForSequenceClassification,
            "causal-lm": transformers.AutoModelForCausalLM,
            "image-classification": transformers.AutoModelForImageClassification}[task]
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(seed)
    model = auto.from_config(config).eval()
    if task == "sequence-classification" and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


def text_inputs(batch: int, seq: int, pad: int = PAD, seed: int = 0):
    """(input_ids, attention_mask): ragged right padding (row r has 3r fewer tokens, at least one), pad ids
    under the mask, and, with 3 rows or more, a last row that is all padding (a server filling a batch)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB - 1, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row in range(1, batch):
        mask[row, max(1, seq - row * 3):] = 0
    if batch >= 3:
        mask[-1] = 0
    ids[mask == 0] = pad
    return ids, mask


def image_inputs(batch: int, size: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, size, size, generator=gen),)
