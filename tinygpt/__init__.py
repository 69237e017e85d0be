"""tinygpt: a GPT in tinygrad that trains on any corpus with a `bpe` tokenizer."""
