"""Chat models: one module per backend behind the ChatModel protocol, and the shared turn queue."""
