"""One translator per wire schema (`openai`, `anthropic`, `gemini`), each owning everything
its schema knows: requests, JSON answers and their usage, event streams, error bodies. They
meet in the neutral form of `ir`, so any client schema reaches any provider schema."""
