"""Index stage: parse the corpus, segment, embed, store and publish builds, tune the query encoder."""
