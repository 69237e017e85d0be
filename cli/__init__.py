"""Console commands `bpe` and `tinygpt`: thin click layers over the libraries."""
