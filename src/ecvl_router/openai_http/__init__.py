"""Pieces of an OpenAI-compatible HTTP client shared by ``collect`` and ``serve``: errors, redaction, status mapping."""
