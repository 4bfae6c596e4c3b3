"""Knowledge assistant: documents → chunks → 384-d embeddings → FAISS → LangChain retrieve,
re-rank, prompt, stream answers with citations (see functions/knowledge/README.md)."""
