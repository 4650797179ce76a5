"""The contract between training and inference: a record as one tagged text and back (serialize),
and the tokenizer that reads it."""
