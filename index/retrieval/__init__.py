"""Finding passages for a question: the question parsed once, then dense and lexical search fused."""
