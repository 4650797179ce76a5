"""Training: the tokenizer's training (tokenizer_run), token shards (data), the loop (train), and
the parameter-golf score (golf)."""
