"""Index stage: parse the corpus, segment, embed, store and publish builds, and tune the
query encoder."""
