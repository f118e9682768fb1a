"""Text conditioning for text-to-image families: captioned-image datasets, the text-encoder
interface (precomputed sentence embeddings, the built-in bidirectional GRU, or a CLIP text tower
from a local folder: ``translate.text.clip``), and DAMSM pretraining of the GRU
(``translate.text.damsm``)."""
