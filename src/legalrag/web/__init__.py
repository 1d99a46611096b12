"""Web stage: the Gradio chat, its sessions and views, uploads and the knowledge base."""
