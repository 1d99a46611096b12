"""Retrieval stage: exact lookup, BM25 and dense search, fusion, reranking, live reload,
abstention, follow-up rewriting and retrieval evaluation."""
