"""Test doubles served over real HTTP: the OpenAI-compatible LLM stub and its Batch API."""
