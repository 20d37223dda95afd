"""Where an index lives: building a version (embeddings, FAISS, BM25, SQLite) and opening it."""
