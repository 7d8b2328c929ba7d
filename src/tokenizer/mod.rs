//! Text tokenizers (SentencePiece unigram for T5).
