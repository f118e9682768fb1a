"""Text conditioning for text-to-image families: captioned-image datasets, the text-encoder
interface (precomputed sentence embeddings or the built-in bidirectional GRU), and DAMSM
pretraining of the encoder (``translate.text.damsm``)."""
